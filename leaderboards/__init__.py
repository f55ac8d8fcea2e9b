"""rewardbench: leaderboards."""
