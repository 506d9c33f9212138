"""Identity, Keystone v3 compatible: domains, projects, users, roles, role assignments, tokens.

The business logic the REST routes (kvmfleet.api.identity) and the CLI (kvmfleet identity/user/project)
share. Every function but ``bootstrap`` and ``tokens.validate`` works inside the caller's session.

    from kvmfleet import identity
    identity.bootstrap(store, admin_password)          # keystone-manage bootstrap, idempotent
    info = identity.tokens.validate(store, token)      # every request (AuthFailed -> 401)
    token, info = identity.auth.authenticate(session, auth)   # POST /v3/auth/tokens

Modules: errors, passwords (bcrypt), tokens, auth, domains, projects, users, roles (+ assignments),
catalog, bootstrap.
"""

from kvmfleet.identity import errors, tokens
from kvmfleet.identity.bootstrap import bootstrap

__all__ = ["bootstrap", "errors", "tokens"]
