"""The one error the generator raises."""


class GeneratorError(Exception):
    """A schema construct the generator refuses; the message names the model and field."""
