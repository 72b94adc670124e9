"""Plain-Python foundations shared by every layer: errors, atomic writes, optional imports. No torch.nn."""
