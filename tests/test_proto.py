# -*- test-case-name: tests.test_proto -*-
"""
Tests for L{aphelion.proto}: the generated modules are up to date, and the
schemas keep the wire format that the contract fixes.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from twisted.trial.unittest import SynchronousTestCase

from aphelion.proto import game_pb2, ping_pb2
from aphelion.proto.generate import PROTO_DIR, generate

try:
    import grpc_tools  # noqa: F401
except ImportError:  # pragma: no cover
    _protocMissing: str | None = "grpcio-tools (the proto extra) is not installed"
else:
    _protocMissing = None


class GeneratedModulesTests(SynchronousTestCase):
    """
    Tests for the committed C{*_pb2.py} and C{*_pb2.pyi} modules.
    """

    skip = _protocMissing

    def test_upToDate(self) -> None:
        """
        Regenerating the modules from the C{.proto} files gives, byte for byte,
        the committed ones: nobody edited a schema without regenerating.
        """
        outDir = Path(self.mktemp())
        outDir.mkdir(parents=True)
        generate(outDir)
        generatedDir = outDir / "aphelion" / "proto"
        advice = "; run `python -m aphelion.proto.generate` and commit the result"

        def names(folder: Path) -> set[str]:
            return {
                path.name
                for pattern in ("*_pb2.py", "*_pb2.pyi")
                for path in folder.glob(pattern)
            }

        generated = names(generatedDir)
        self.assertEqual(
            names(PROTO_DIR), generated, "generated modules differ" + advice
        )
        self.assertTrue(generated)
        for name in sorted(generated):
            self.assertEqual(
                (PROTO_DIR / name).read_bytes(),
                (generatedDir / name).read_bytes(),
                f"aphelion/proto/{name} is stale" + advice,
            )


def fieldNumbers(message: type[Message]) -> dict[str, int]:
    """
    The field names and numbers of a message class.
    """
    return {field.name: field.number for field in message.DESCRIPTOR.fields}


class GameProtocolTests(SynchronousTestCase):
    """
    Tests for the gateway's part of the game protocol (Part 1.6).
    """

    def test_gatewayFieldNumbers(self) -> None:
        """
        The gateway's fields of C{C2S} and C{S2C} have the contract's numbers,
        all in 100-199.
        """
        self.assertEqual(fieldNumbers(game_pb2.C2S), {"authenticate": 100})
        self.assertEqual(
            fieldNumbers(game_pb2.S2C),
            {
                "authenticate_response": 101,
                "connected": 110,
                "game_config": 111,
                "disconnect": 112,
            },
        )
        fields = game_pb2.S2C.DESCRIPTOR.fields_by_name
        self.assertEqual(fields["authenticate_response"].number, 101)
        self.assertEqual(
            game_pb2.C2S.DESCRIPTOR.fields_by_name["authenticate"].number, 100
        )

    def test_messageFieldNumbers(self) -> None:
        """
        The messages inside C{C2S} and C{S2C} have the contract's field
        numbers; C{Authenticate.id} is field 1, where Aphelion's client puts
        its nickname.
        """
        self.assertEqual(fieldNumbers(game_pb2.Authenticate), {"id": 1})
        self.assertEqual(
            fieldNumbers(game_pb2.AuthenticateResponse),
            {"result": 1, "description": 2},
        )
        self.assertEqual(
            fieldNumbers(game_pb2.GameDetails),
            {
                "server_id": 1,
                "name": 2,
                "player_id": 3,
                "players": 4,
                "capacity": 5,
                "extra": 15,
            },
        )
        self.assertEqual(
            fieldNumbers(game_pb2.GameConfig), {"content_type": 1, "content": 2}
        )
        self.assertEqual(fieldNumbers(game_pb2.Disconnect), {"code": 1, "reason": 2})

    def test_resultValues(self) -> None:
        """
        C{AuthenticateResponse.Result} numbers its values 0-8 as the contract
        does (0-4 as Aphelion numbers them).
        """
        self.assertEqual(
            dict(game_pb2.AuthenticateResponse.Result.items()),
            {
                "OK": 0,
                "OTHER": 1,
                "AUTH_METHOD_UNSUPPORTED": 2,
                "INVALID_ID": 3,
                "ID_IN_USE": 4,
                "NO_SERVER": 5,
                "REJECTED": 6,
                "TOO_MANY_ATTEMPTS": 7,
                "NOT_AUTHENTICATED": 8,
            },
        )

    def test_okIsSerialized(self) -> None:
        """
        C{AuthenticateResponse.result} has explicit presence: a result of
        C{OK} (0) is sent, not dropped as a default.
        """
        response = game_pb2.AuthenticateResponse(
            result=game_pb2.AuthenticateResponse.OK
        )
        self.assertTrue(response.HasField("result"))
        self.assertEqual(response.SerializeToString(), b"\x08\x00")
        # Field 101, length-delimited: tag (101 << 3 | 2) = 810 = aa 06.
        self.assertEqual(
            game_pb2.S2C(authenticate_response=response).SerializeToString(),
            b"\xaa\x06\x02\x08\x00",
        )
        parsed = game_pb2.S2C.FromString(b"\xaa\x06\x02\x08\x00")
        self.assertTrue(parsed.authenticate_response.HasField("result"))

    def test_unknownFieldsKept(self) -> None:
        """
        Bytes of game fields that the gateway's C{C2S} and C{S2C} do not know
        survive a parse and a re-serialization unchanged.
        """
        authenticate = game_pb2.C2S(
            authenticate=game_pb2.Authenticate(id="player")
        ).SerializeToString()
        # Field 1, varint 150; field 7, length-delimited "move".
        gameFields = b"\x08\x96\x01\x3a\x04move"
        c2s = game_pb2.C2S.FromString(authenticate + gameFields)
        self.assertEqual(c2s.authenticate.id, "player")
        self.assertEqual(c2s.SerializeToString(), authenticate + gameFields)
        s2c = game_pb2.S2C.FromString(gameFields)
        self.assertEqual(s2c.SerializeToString(), gameFields)

    def test_gameViewRoundTrips(self) -> None:
        """
        A game's own C{C2S}, which adds fields of its own to the gateway's,
        passes through the gateway's view unchanged: the gateway sees the
        C{authenticate} field and keeps the game's fields.
        """
        gameC2S = _gameMessageClass()
        original = gameC2S(chat="hello", position=[1, 2, 3])
        original.authenticate.id = "ticket"
        wire = original.SerializeToString()
        gatewayView = game_pb2.C2S.FromString(wire)
        self.assertEqual(gatewayView.authenticate.id, "ticket")
        relayed = gameC2S.FromString(gatewayView.SerializeToString())
        self.assertEqual(relayed, original)


def _gameMessageClass() -> type[Message]:
    """
    Build, at run time, a game's C{C2S}: the gateway's C{authenticate} field
    plus a string field 1 and a packed repeated field 200 of the game's own.
    """
    pool = descriptor_pool.DescriptorPool()
    gameProto = descriptor_pb2.FileDescriptorProto()
    game_pb2.DESCRIPTOR.CopyToProto(gameProto)
    pool.Add(gameProto)

    fileProto = descriptor_pb2.FileDescriptorProto(
        name="mygame/game.proto",
        package="mygame",
        syntax="proto3",
        dependency=[gameProto.name],
    )
    c2s = fileProto.message_type.add(name="C2S")
    c2s.field.add(
        name="chat",
        number=1,
        type=FieldDescriptor.TYPE_STRING,
        label=FieldDescriptor.LABEL_OPTIONAL,
    )
    c2s.field.add(
        name="authenticate",
        number=100,
        type=FieldDescriptor.TYPE_MESSAGE,
        type_name=".aphelion.game.Authenticate",
        label=FieldDescriptor.LABEL_OPTIONAL,
    )
    c2s.field.add(
        name="position",
        number=200,
        type=FieldDescriptor.TYPE_SINT32,
        label=FieldDescriptor.LABEL_REPEATED,
    )
    pool.Add(fileProto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("mygame.C2S"))


class PingProtocolTests(SynchronousTestCase):
    """
    Tests for the ping protocol's messages (Part 1.5).
    """

    def assertFields(
        self, message: type[Message], expected: dict[str, tuple[int, int]]
    ) -> None:
        """
        Assert that C{message} has exactly the fields of C{expected}, each with
        the given number and wire type.

        :param message: the message class under test.
        :param expected: field name to (number, L{FieldDescriptor} type).
        """
        self.assertEqual(
            {
                field.name: (field.number, field.type)
                for field in message.DESCRIPTOR.fields
            },
            expected,
        )

    def test_pingRequest(self) -> None:
        """
        C{PingRequest.client_time} is field 1, an C{sfixed64}.
        """
        self.assertFields(
            ping_pb2.PingRequest,
            {"client_time": (1, FieldDescriptor.TYPE_SFIXED64)},
        )

    def test_pingResponse(self) -> None:
        """
        C{PingResponse} has C{sfixed64} times in fields 1 and 2 and C{uint32}
        counts in fields 3 and 4.
        """
        self.assertFields(
            ping_pb2.PingResponse,
            {
                "client_time": (1, FieldDescriptor.TYPE_SFIXED64),
                "server_time": (2, FieldDescriptor.TYPE_SFIXED64),
                "players": (3, FieldDescriptor.TYPE_UINT32),
                "playing": (4, FieldDescriptor.TYPE_UINT32),
            },
        )

    def test_clientTimeEchoedBytes(self) -> None:
        """
        A negative client time is eight little-endian bytes after tag C{09},
        and copying it into a response keeps those bytes.
        """
        request = ping_pb2.PingRequest(client_time=-2)
        self.assertEqual(request.SerializeToString(), b"\x09" + b"\xfe" + b"\xff" * 7)
        response = ping_pb2.PingResponse(client_time=request.client_time)
        self.assertEqual(response.SerializeToString(), request.SerializeToString())
