from channels_app.admin import configuration, standard_responses  # noqa: F401  (registers the model admins)
