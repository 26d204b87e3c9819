"""Lightning callbacks shared by every family."""
