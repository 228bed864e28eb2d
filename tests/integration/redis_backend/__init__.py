"""The Redis backend's own tests, against a real Redis (``scripts/with-services.sh``)."""
