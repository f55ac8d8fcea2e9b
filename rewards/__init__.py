"""The reward zoo: one module per family, each registering named rewards with
``@rewardbench.register_reward``. Modules here are imported by the registry on its first query;
they must import heavy libraries (transformers, open_clip, ultralytics, ...) inside builders only."""
