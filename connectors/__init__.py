"""Pure importers of retailer purchase data (export files and a push API).

Nothing here imports Flask or :mod:`infomediary`. The importers arrive with the connectors
feature; this package already exists so the dependency direction is fixed from the start.
"""
