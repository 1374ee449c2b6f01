# -*- test-case-name: tests.test_auth -*-
"""
C{--auth} plugins of aphelion: C{dev}, C{sqlite:PATH},
C{postgresql:DSN[:password-file=PATH]} and
C{ticket:SECRET_FILE[:max-lifetime=SECONDS][:one-time][:max-remembered=N]}.
"""

from aphelion.auth.plugins import (
    DevCheckerFactory,
    PostgreSQLCheckerFactory,
    SQLiteCheckerFactory,
    TicketCheckerFactory,
)

aphelionDevChecker = DevCheckerFactory()
aphelionSQLiteChecker = SQLiteCheckerFactory()
aphelionPostgreSQLChecker = PostgreSQLCheckerFactory()
aphelionTicketChecker = TicketCheckerFactory()
