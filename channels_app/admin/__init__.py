from channels_app.admin import configuration  # noqa: F401  (registers the model admins)
