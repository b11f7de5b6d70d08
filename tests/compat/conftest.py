# The vendored apps under apps/ carry their own test suites, run by the compat harness in
# each app's own virtualenv with its own pins; the gateway's pytest never collects them.
collect_ignore_glob = ["apps/*"]
