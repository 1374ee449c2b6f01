# aphelion behind varnish: WebSockets go through in pipe mode (its
# pipe_timeout parameter plays the part of nginx's proxy_read_timeout; keep it
# above the auto-ping interval). varnishd appends the client's address to
# X-Forwarded-For itself. Start aphelion on loopback, trusting that header:
#
#   twistd -n aphelion --listen tcp:8080:interface=127.0.0.1 --trust-forwarded-for
vcl 4.1;

backend aphelion {
    .host = "127.0.0.1";
    .port = "8080";
}

sub vcl_recv {
    if (req.http.Upgrade ~ "(?i)websocket") {
        return (pipe);
    }
}

sub vcl_pipe {
    if (req.http.Upgrade) {
        set bereq.http.Upgrade = req.http.Upgrade;
        set bereq.http.Connection = req.http.Connection;
    }
}
