"""TLS for HTTP servers: contexts, SNI, ALPN, sessions, certificates.

Layout:
- ``openssl``: a ctypes bridge to the libssl/libcrypto that CPython's
  ``_ssl`` already loaded (what Python's ``ssl`` cannot express: nginx's
  always-accept verify callback, ticket keys, the external session cache,
  SSL_CONF_cmd, nginx-worded OpenSSL errors).
- ``context``: one ``ssl.SSLContext`` per server{} as nginx's
  ngx_http_ssl_merge_srv_conf builds it, plus the SNI callback.
- ``sessions``: ``ssl_session_cache shared:`` and session ticket keys kept
  in a shared zone so that any worker, and the next configuration after a
  reload, resumes a session.
- ``info``: the ``$ssl_*`` values read from a finished handshake.
- ``selfsigned``: a first-run certificate for the bundled configuration.

Invariant: nothing here imports the HTTP layer; ``portico.http.modules.ssl``
is the nginx module that drives it.
"""
