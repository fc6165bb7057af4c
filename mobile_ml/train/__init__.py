"""Training stage: candidate grid → early stopping → selection on validation → test evaluation → run directory."""
