"""The wire format of every HTTP boundary in the system, written once.

Each module holds the request/response classes of one service (frozen attrs) and the
table of its operations. Services structure what they receive and callers structure
what they get back with the single converter in :mod:`contracts.converter`.
"""
