"""Dataset loaders, honest metrics and the ``anomalist eval ...`` suites. Never downloads anything."""
