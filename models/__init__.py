"""One subpackage per domain; each registers its builders with zoo.register_model."""
