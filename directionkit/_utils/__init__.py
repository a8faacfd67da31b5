"""Helpers every floor of directionkit uses: parameter validation with messages that
teach (:mod:`~directionkit._utils.validation`) and the names of options
(:mod:`~directionkit._utils.choices`).  They import nothing else of directionkit but
:mod:`directionkit.errors`."""
