"""The conversation viewer at ``/``: one page and the plain ES modules it runs, served from the package.

``page.py`` answers ``/`` with ``page.html``; ``assets.py`` serves ``static/``. The modules are
hand-written and load nothing else, so there is nothing to vendor, pin or build: the page works
offline as GraphiQL does.
"""
