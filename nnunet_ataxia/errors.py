"""The one exception type that the command line turns into a clear message and a non-zero exit."""


class InputError(Exception):
    """Bad user input: a missing file, wrong labels, mismatched geometry, an unknown dataset...

    The message must name the file (or dataset/case) and the problem; ``nnunet-ataxia`` prints it as
    ``error: <message>`` and exits with status 1, without a traceback.
    """
