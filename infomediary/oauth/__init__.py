"""The OAuth 2 authorization server (authlib) and its resource protector, in one place."""
