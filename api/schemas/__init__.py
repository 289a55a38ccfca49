"""HTTP request and response models, kept apart from the payloads workflows exchange."""
