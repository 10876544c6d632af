"""Learning algorithms: the episodic bases, PPO, and PPO's math as pure functions."""
