"""Workspace writers: the env agent, policies, critics, and the networks inside them."""
