"""Optional Django app: add "layers.django" to INSTALLED_APPS for manage.py chanlayers_send."""
