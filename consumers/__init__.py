"""consumers: Django Channels-shaped consumers and routing over any chanlayers layer.

The consumer classes arrive with their own issue; this package already ships so that
the distribution's layout is fixed from the start.
"""
