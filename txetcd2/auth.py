"""
etcd's v2 auth API: ``EtcdClient(...).auth``, its models and errors.
"""

from txetcd2._api.auth import AuthAPI
from txetcd2._wire.auth_models import (
    AuthConflict,
    AuthNotFound,
    AuthRequestRejected,
    EtcdAuthError,
    InsufficientCredentials,
    Role,
    RootProtected,
    User,
)

__all__ = [
    "AuthAPI",
    "AuthConflict",
    "AuthNotFound",
    "AuthRequestRejected",
    "EtcdAuthError",
    "InsufficientCredentials",
    "Role",
    "RootProtected",
    "User",
]
