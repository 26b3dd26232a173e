"""The model loop's business logic: features, datasets, training runs, scoring, triggers, promotion.

Views, API views and Celery tasks all call these functions; the tasks in ``worker/tasks.py`` are
thin wrappers. The ML itself is in ``modeling.ml`` (plain torch/numpy, no Django).
"""
