"""A local gallery where people judge a trained generator (`python -m jaxgan.gallery`).

- rating pages: generated images by class, rated 1-5, flagged favourite / looks copied;
- blind trials (HYPE, Zhou et al. 2019): real training image or generated, one at a time;
- report (`python -m jaxgan.gallery report`): mean ratings and fooling rates with 95% intervals.

Modules: `imageset` (what is shown, a pure function of step and seed), `store` (SQLite),
`server` (standard-library HTTP), `report` (statistics), `making` (re-drawn favourites).
Importing this package imports neither JAX nor TensorFlow.
"""
