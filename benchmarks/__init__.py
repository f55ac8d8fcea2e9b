"""rewardbench: benchmarks."""
