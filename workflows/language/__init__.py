"""The definition language: the model, expressions, references, durations, limits,
validation, plans and the catalog of definition files."""
