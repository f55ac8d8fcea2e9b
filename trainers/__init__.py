"""rewardbench: trainers."""
