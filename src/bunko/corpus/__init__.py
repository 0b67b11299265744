"""The corpus side of an update: what changed on disk, and the chunk rows it becomes."""
