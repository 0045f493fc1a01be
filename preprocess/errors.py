"""The one error type for bad user input to the preprocess stage.

Its message is a single line ``<file or option>: <what was expected>``; the CLI prints it as
``error: <message>`` and exits with status 2 (no traceback unless ``--debug``).
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: a missing/corrupt file or an invalid option. The message names the file or option."""
