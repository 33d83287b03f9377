"""M1/M2 trainers (being written by the lead)."""
__all__: list[str] = []
