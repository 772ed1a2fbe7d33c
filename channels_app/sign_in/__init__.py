"""Signing in (API.md, "Sign-in"; README "Sign-in"): the password form, single sign-on with OpenID Connect and
the second factor, as views any login page reuses (the admin's now, the workspace's when it exists)."""
