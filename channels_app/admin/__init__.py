from channels_app.admin import configuration, conversations, standard_responses  # noqa: F401  (registers the admins)
