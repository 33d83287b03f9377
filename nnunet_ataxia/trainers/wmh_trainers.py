"""WMH location-network trainers (placeholder; owned by the WMH-networks engineer)."""
__all__: list[str] = []
