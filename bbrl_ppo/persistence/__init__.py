"""What goes to disk and comes back: agent and training checkpoints, env state, registry."""
