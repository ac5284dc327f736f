"""Find: where the plates are in a frame (the classic localiser and its helpers)."""
