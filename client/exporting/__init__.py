"""A tenant's sessions out of the store, through its API, as a file ``session-graphql import
--from-file`` (``client.importing.export_file``) writes back into any tenant.

``records`` is the file's format (versioned JSON Lines); ``export.Exporter`` writes it page by
page. The ``session-graphql export`` command is this with a progress bar.
"""
