"""A safe unpickler for CIFAR-10's Python batches: numpy arrays of numbers, lists, dicts,
numbers and strings, nothing else resolved, every declared size backed by the file."""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import reprlib
from typing import Any

import numpy as np

# The globals a pickled numpy array needs, across numpy 1.x (numpy.core) and 2.x (numpy._core)
# and pickle protocols 2 to 5; nothing else is ever resolved, and each of these is replaced by
# a checked stand-in (see _ArrayOnlyUnpickler).
_PICKLE_ALLOWED = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)

#: The opcodes that store into the memo at an index of the pickle's choosing.
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals numpy arrays need, each checked.

    - ``numpy.ndarray`` is only a marker passed to ``_reconstruct``; calling it is refused
      (``numpy.ndarray(shape, "O")`` allocates any shape a file names, with no data behind it).
    - ``numpy.dtype`` is :class:`_PickledDtype`: plain number types only, whose state (a byte
      order) is checked here rather than by numpy's ``dtype.__setstate__``.
    - ``_reconstruct`` makes an empty :class:`_CheckedArray`, whose state must carry exactly
      the bytes its shape and dtype need.
    - ``_frombuffer`` gets the real dtype (numpy checks the buffer's size against it).

    Every array rebuilt from a state and every string ``_codecs.encode`` makes takes its size
    from a budget of twice the file's bytes (a protocol-2 array's bytes are encoded once,
    then adopted), so data fetched from the memo again and again are not multiplied.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="bytes")
        self._backed = 2 * len(data)
        self._left = self._backed

    def spend(self, nbytes: int, what: str) -> None:
        """Take ``nbytes`` from the budget the file's bytes back, or refuse ``what``."""
        if nbytes > self._left:
            raise pickle.UnpicklingError(
                f"{what} takes {nbytes:,} bytes, more than the {self._left:,} left of the "
                f"{self._backed:,} bytes (twice the file's size) its data can back"
            )
        self._left -= nbytes

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")
        if name == "ndarray":
            return _NDARRAY
        if name == "dtype":
            return _PickledDtype
        found = super().find_class(module, name)
        if name == "_reconstruct":
            return self._empty_reconstruct(found)
        if name == "_frombuffer":
            return lambda buf, dtype, *rest: found(buf, _plain_dtype(dtype), *rest)

        def encode(obj: Any, *args: Any) -> Any:  # _codecs.encode
            encoded = found(obj, *args)
            self.spend(len(encoded), "an encoded string")
            return encoded

        return encode

    def _empty_reconstruct(self, reconstruct: Any) -> Any:
        """numpy's ``_reconstruct``, limited to the empty array every pickled ndarray starts as.

        A pickle calls ``_reconstruct(ndarray, (0,), b"b")`` and then fills the array from
        bytes it carries (:meth:`_CheckedArray.__setstate__`); a forged shape would allocate
        that many bytes from a file of a few dozen.
        """

        def checked(subtype: Any, shape: Any, dtype: Any) -> Any:
            if subtype is not _NDARRAY:
                raise pickle.UnpicklingError(
                    f"_reconstruct rebuilds {reprlib.repr(subtype)}, not a numpy.ndarray"
                )
            if not isinstance(shape, tuple) or math.prod(int(d) for d in shape) != 0:
                raise pickle.UnpicklingError(
                    f"an array is rebuilt with shape {reprlib.repr(shape)}, not (0,)"
                )
            array = reconstruct(_CheckedArray, (0,), b"b")
            array.spend = self.spend
            return array

        return checked


class _NdarrayMarker:
    """``numpy.ndarray`` as a pickle sees it: the type ``_reconstruct`` is told to rebuild."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError(
            f"numpy.ndarray is called with {reprlib.repr(args)}: it would allocate that array "
            "with no data in the file behind it; an array is only rebuilt from its bytes"
        )


_NDARRAY = _NdarrayMarker()


class _PickledDtype:
    """A pickled ``numpy.dtype``: a plain number type and a byte order, nothing else.

    numpy's own ``dtype.__setstate__`` takes whatever fields and flags a state claims,
    objects included; this stand-in keeps what an array of numbers needs and is turned
    into a real dtype by the array that uses it (:func:`_plain_dtype`).
    """

    def __init__(self, spec: Any, align: Any = False, copy: Any = False) -> None:
        if isinstance(spec, bytes):  # a Python 2 pickle's str, read with encoding="bytes"
            spec = spec.decode("latin-1")
        dtype = np.dtype(spec) if isinstance(spec, str) else None
        if dtype is None or dtype.kind not in "biufc" or dtype.fields or dtype.subdtype:
            raise pickle.UnpicklingError(
                f"dtype {reprlib.repr(spec)} is not a plain number type (arrays of objects, "
                "strings and records are refused)"
            )
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        if isinstance(order, bytes):
            order = order.decode("latin-1")
        if order not in ("<", ">", "=", "|") or any(v is not None for v in state[2:5]):
            raise pickle.UnpicklingError(
                f"a dtype has the state {reprlib.repr(state)}, not a byte order without "
                "fields or sub-arrays"
            )
        self.dtype = np.dtype(order + self.dtype.str[1:])


def _plain_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, _PickledDtype):
        raise pickle.UnpicklingError(
            f"an array's dtype is {reprlib.repr(dtype)}, not a pickled numpy.dtype"
        )
    return dtype.dtype


class _CheckedArray(np.ndarray):
    """An array a pickle rebuilds: its state is checked before numpy's ``__setstate__`` sees it.

    numpy would allocate the declared shape of an object dtype whatever the data (and
    crash on a short list); here the state must hold exactly the bytes of its shape.
    """

    spend: Any  # _ArrayOnlyUnpickler.spend of the unpickler that made it

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError(
                f"an array has the state {reprlib.repr(state)}, not numpy's "
                "(version, shape, dtype, is_fortran, data)"
            )
        shape, dtype, fortran, raw = state[-4:]
        dtype = _plain_dtype(dtype)
        if not isinstance(shape, tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise pickle.UnpicklingError(
                f"an array has shape {reprlib.repr(shape)}, not a tuple of ints >= 0"
            )
        if not isinstance(raw, bytes):
            raise pickle.UnpicklingError(
                f"an array's data are a {type(raw).__name__}, not bytes (arrays of Python "
                "objects are refused)"
            )
        declared = math.prod(shape) * dtype.itemsize
        if declared != len(raw):
            raise pickle.UnpicklingError(
                f"an array declares shape {reprlib.repr(shape)} of {dtype} ({declared:,} "
                f"bytes) but carries {len(raw):,} bytes of data"
            )
        self.spend(declared, f"an array of shape {reprlib.repr(shape)}")
        checked: Any = (1, shape, dtype, bool(fortran), raw)
        super().__setstate__(checked)


def _check_pickle_sizes(data: bytes) -> None:
    """Raise unless every size a pickle declares is backed by what is in ``data``.

    Python's C unpickler allocates ahead of reading: a declared ``bytes``/``bytearray``
    length before the data, and a memo table of twice the largest index stored (8 bytes
    an entry), so 9 or 15 bytes can ask for gigabytes.  :mod:`pickletools` reads the same
    opcodes without allocating ahead and fails on the first length that overruns; a memo
    index may not exceed the number of opcodes before it (a pickler numbers its memo
    entries 0, 1, 2, ... as it writes them).
    """
    for count, (opcode, arg, pos) in enumerate(pickletools.genops(data)):
        if opcode.name in _MEMO_PUTS and isinstance(arg, int) and arg > count:
            raise pickle.UnpicklingError(
                f"{opcode.name} at byte {pos} stores memo entry {arg:,} (a memo table of "
                f"{16 * arg:,} bytes) after {count} opcodes; a memo index may be at most the "
                "number of opcodes before it"
            )
