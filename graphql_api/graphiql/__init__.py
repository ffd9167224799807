"""GraphiQL without the internet: the page, its pinned scripts and styles, and the examples it opens with.

``page.py`` renders ``page.html`` with the assets listed in ``vendor.json`` and the documents in
``examples.graphql``; ``assets.py`` serves ``static/``. ``static/vendor/`` and ``vendor.json`` are
written only by ``scripts/update_graphiql_assets.py``.
"""
