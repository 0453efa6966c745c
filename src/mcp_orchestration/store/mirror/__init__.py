"""Mirrors: a store's signed index and objects on a distribution point desktops pull from.

A mirror holds the files a desktop needs to verify and apply a config, laid
out as ``tree.py`` says, behind one of the transports registered in
``transport.py`` (a directory, a static HTTP tree, an OCI registry). Nothing
a mirror serves is trusted: ``app/sync.py`` checks every byte against the
pinned root before it uses it.
"""
