"""Routing corpus for the nginx-vs-Portico differential suite: configurations
taken from common deployments, each with the requests that exercise it.

Invariants:
- A ``Deployment.http`` is the body of ``http{}`` for both servers; it
  differs between them only by ``%PORT%`` (the listen port, filled in by the
  test) and ``%PREFIX%`` (filled in by the harness).  Every server listens on
  127.0.0.1:%PORT% so a request's Host header picks the virtual server.
- Content handlers that would need a backend (PHP) are stood in for by
  ``return 200 "..."`` bodies that print the variables the routing decided
  ($uri, $args, captures), so a routing difference shows up in the body.
- Requests are (uri, host, headers) triples sent as GET on a fresh
  connection; ids are unique.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Req:
    uri: str
    host: str = "example.com"
    headers: tuple[tuple[str, str], ...] = ()
    method: str = "GET"


@dataclass(frozen=True)
class Deployment:
    id: str
    http: str
    files: dict[str, str] = field(default_factory=dict)
    requests: tuple[Req, ...] = ()


PHP_STUB = 'return 200 "php uri=$uri script=$document_root$uri args=$args\\n";'

WORDPRESS = Deployment(
    "wordpress",
    """
    server {
        listen 127.0.0.1:%PORT%;
        server_name example.com;
        root %PREFIX%/html;
        index index.php index.html;
        location / { try_files $uri $uri/ /index.php?$args; }
        location ~ \\.php$ {
            if (!-f $request_filename) { return 404; }
            """ + PHP_STUB + """
        }
        location ~* \\.(css|js|png)$ { expires 30d; }
        location = /xmlrpc.php { deny all; }
        location ~ /\\. { deny all; }
    }
    """,
    {"html/index.php": "<?php front();\n", "html/wp-login.php": "<?php login();\n",
     "html/wp-content/style.css": "body{}\n", "html/docs/index.html": "docs\n",
     "html/.htaccess": "secret\n", "html/xmlrpc.php": "<?php rpc();\n"},
    (Req("/"), Req("/hello-world/"), Req("/hello-world/?p=1&x=y"), Req("/wp-login.php"),
     Req("/missing.php"), Req("/wp-content/style.css"), Req("/docs"), Req("/docs/"),
     Req("/?s=search+term"), Req("/wp-admin/"), Req("/xmlrpc.php"), Req("/.htaccess"),
     Req("/category/news/page/2/"), Req("/wp-content/missing.css")),
)

LARAVEL = Deployment(
    "laravel",
    """
    server {
        listen 127.0.0.1:%PORT%;
        server_name example.com;
        root %PREFIX%/public;
        index index.php;
        location / { try_files $uri $uri/ /index.php?$query_string; }
        location = /favicon.ico { access_log off; log_not_found off; }
        location = /robots.txt  { access_log off; log_not_found off; }
        error_page 404 /index.php;
        location ~ \\.php$ {
            """ + PHP_STUB + """
        }
        location ~ /\\.(?!well-known).* { deny all; }
    }
    """,
    {"public/index.php": "<?php laravel();\n", "public/robots.txt": "User-agent: *\n",
     "public/css/app.css": "a{}\n", "public/.well-known/security.txt": "contact\n",
     "public/.env": "SECRET=1\n"},
    (Req("/"), Req("/users/42"), Req("/users/42?sort=desc&page=3"), Req("/css/app.css"),
     Req("/robots.txt"), Req("/favicon.ico"), Req("/.env"), Req("/.well-known/security.txt"),
     Req("/css/"), Req("/api/v1/items?x=%20y")),
)

SPA = Deployment(
    "spa",
    """
    server {
        listen 127.0.0.1:%PORT%;
        server_name app.example.com;
        root %PREFIX%/dist;
        location / { try_files $uri $uri/ /index.html; }
        location /api/ { return 404; }
        location = /index.html { add_header Cache-Control "no-cache"; }
        location /assets/ { try_files $uri =404; expires max; }
    }
    """,
    {"dist/index.html": "<html>spa</html>\n", "dist/assets/app.js": "app()\n",
     "dist/favicon.ico": "ico\n"},
    (Req("/", "app.example.com"), Req("/dashboard", "app.example.com"),
     Req("/users/1/edit?tab=2", "app.example.com"), Req("/assets/app.js", "app.example.com"),
     Req("/assets/missing.js", "app.example.com"), Req("/api/users", "app.example.com"),
     Req("/favicon.ico", "app.example.com"), Req("/index.html", "app.example.com")),
)

CANONICAL = Deployment(
    "canonical",
    """
    server {
        listen 127.0.0.1:%PORT%;
        server_name www.example.com example.net;
        return 301 http://example.com$request_uri;
    }
    server {
        listen 127.0.0.1:%PORT% default_server;
        server_name example.com;
        if ($http_x_forwarded_proto = "http") { return 301 https://$host$request_uri; }
        if ($host != "example.com") { rewrite ^ http://example.com$uri permanent; }
        location / { return 200 "canonical $host $uri $args\\n"; }
    }
    """,
    {},
    (Req("/"), Req("/a/b?c=d", "www.example.com"), Req("/x", "example.net"),
     Req("/y?z=1", headers=(("X-Forwarded-Proto", "http"),)),
     Req("/y?z=1", headers=(("X-Forwarded-Proto", "https"),)),
     Req("/other?q=1", "other.example.org"), Req("/%7Euser/a%20b", "www.example.com")),
)

LEGACY = Deployment(
    "legacy",
    """
    server {
        listen 127.0.0.1:%PORT%;
        server_name example.com;
        rewrite ^/blog/(\\d+)/(\\d+)/(.*)$ /posts/$3?year=$1&month=$2 permanent;
        rewrite ^/old/(.*)$ /new/$1 last;
        rewrite ^/product\\.php$ /products/$arg_id? permanent;
        rewrite ^/tmp/(.*)$ /new/$1 redirect;
        rewrite ^/(?<section>docs|help)/v1/(.*)$ /$section/v2/$2 last;
        location /new/ { return 200 "new uri=$uri args=$args one=$1\\n"; }
        location /docs/ { return 200 "docs uri=$uri section=$section\\n"; }
        location /help/ {
            rewrite ^/help/v2/(.*)$ /new/help-$1 break;
            return 200 "help never\\n";
        }
        location /chain/ {
            rewrite ^/chain/a$ /chain/b;
            rewrite ^/chain/b$ /chain/c;
            return 200 "chain $uri\\n";
        }
        location /args/ {
            rewrite ^/args/(.*)$ /new/$1?from=args;
        }
        location /drop/ { rewrite ^/drop/(.*)$ /new/$1? last; }
        location /abs/ { rewrite ^/abs/(.*)$ https://cdn.example.com/$1?v=2 permanent; }
        location /loop/ { rewrite ^/loop/(.*)$ /loop/$1 last; }
    }
    """,
    {},
    (Req("/blog/2019/05/hello-world"), Req("/blog/2019/05/hello?utm=x"), Req("/old/page?a=1"),
     Req("/product.php?id=77&ref=x"), Req("/tmp/thing?k=v"), Req("/docs/v1/intro"),
     Req("/help/v1/faq"), Req("/chain/a"), Req("/args/x?orig=1"), Req("/args/y"),
     Req("/drop/z?gone=1"), Req("/abs/a%20b+c?x=1"), Req("/abs/plain"), Req("/loop/x"),
     Req("/old/a%20b"), Req("/blog/1/2/a+b%3F?q=1")),
)

MAINTENANCE_ON = Deployment(
    "maintenance_on",
    """
    server {
        listen 127.0.0.1:%PORT%;
        server_name example.com;
        root %PREFIX%/html;
        error_page 503 @maintenance;
        if (-f $document_root/maintenance.html) { return 503; }
        location / { return 200 "live\\n"; }
        location @maintenance { rewrite ^(.*)$ /maintenance.html break; }
    }
    """,
    {"html/maintenance.html": "<h1>down for maintenance</h1>\n"},
    (Req("/"), Req("/any/page?x=1"), Req("/maintenance.html")),
)

MAINTENANCE_OFF = Deployment(
    "maintenance_off",
    MAINTENANCE_ON.http,
    {"html/index.html": "index\n"},
    (Req("/"), Req("/any/page?x=1")),
)

CACHE_BYPASS = Deployment(
    "cache_bypass",
    """
    map $request_method $purge_method { PURGE 1; default 0; }
    map $http_cookie $no_cache {
        default 0;
        ~SESS 1;
        ~wordpress_logged_in 1;
    }
    map $uri $section {
        default none;
        ~^/(?<sect>[a-z]+)/ $sect;
    }
    map $uri $skip_uri {
        default 0;
        ~^/wp-admin/ 1;
        /feed/ 1;
    }
    server {
        listen 127.0.0.1:%PORT%;
        server_name example.com;
        set $skip $no_cache;
        if ($skip_uri) { set $skip 1; }
        if ($query_string != "") { set $skip 1; }
        location / { return 200 "purge=$purge_method no_cache=$no_cache skip=$skip\\n"; }
        # nginx computes $section (a regex map) before it copies $1 and $2,
        # so they show the map's captures, not the location's
        location ~ ^/cap/(\\w+)/(\\w+)$ { return 200 "[$1] [$section] [$2] [$sect]\\n"; }
        location ~ ^/cap2/(\\w+)$ { set $first $1; return 200 "[$first] [$section] [$1]\\n"; }
    }
    """,
    {},
    (Req("/"), Req("/", headers=(("Cookie", "PHPSESSID=1"),)),
     Req("/", headers=(("Cookie", "a=1; wordpress_logged_in_abc=x"),)),
     Req("/wp-admin/edit.php"), Req("/feed/"), Req("/?p=1"), Req("/", method="PURGE"),
     Req("/cap/abc/def"), Req("/cap2/xyz")),
)

GEO_SPLIT = Deployment(
    "geo_split",
    """
    geo $arg_ip $region {
        default other;
        10.0.0.0/8 internal;
        192.168.1.0/24 office;
        192.168.1.128/25 office-wifi;
        2001:db8::/32 v6net;
    }
    split_clients "${arg_uid}AB" $variant {
        10% a;
        40% b;
        * c;
    }
    server {
        listen 127.0.0.1:%PORT%;
        server_name example.com;
        location / { return 200 "region=$region variant=$variant\\n"; }
        location /ab/ {
            if ($variant = a) { rewrite ^/ab/(.*)$ /variant-a/$1 last; }
            return 200 "control $variant\\n";
        }
        location /variant-a/ { return 200 "experiment $uri\\n"; }
    }
    """,
    {},
    tuple([Req(f"/?ip={ip}&uid=u{ip}") for ip in
           ("10.1.2.3", "192.168.1.5", "192.168.1.200", "8.8.8.8", "2001:db8::1", "bogus", "")]
          + [Req(f"/ab/page?uid=user{n}") for n in range(12)]),
)

IF_SURPRISES = Deployment(
    "if_surprises",
    """
    server {
        listen 127.0.0.1:%PORT%;
        server_name example.com;
        root %PREFIX%/html;
        location /only-last/ {
            set $true 1;
            if ($true) { add_header X-First 1; }
            if ($true) { add_header X-Second 2; }
        }
        location /tf/ {
            if ($arg_x) { }
            try_files /nonexistent /index.html;
        }
        location /header/ {
            add_header X-Outer outer;
            if ($arg_inner) { add_header X-Inner inner; }
        }
        location /cap/ {
            if ($uri ~ ^/cap/(\\w+)/(\\w+)) { set $second $2; }
            return 200 "first=$1 second=$second\\n";
        }
        location /neg/ {
            if ($http_user_agent !~* (bot|spider)) { return 200 "human\\n"; }
            return 403;
        }
        location /dir/ {
            if (-d $request_filename) { return 200 "is dir\\n"; }
            if (!-e $request_filename) { return 200 "missing\\n"; }
            return 200 "exists\\n";
        }
    }
    """,
    {"html/index.html": "index\n", "html/only-last/f.txt": "f\n", "html/tf/real.txt": "real\n",
     "html/header/h.txt": "h\n", "html/dir/sub/x.txt": "x\n", "html/dir/file.txt": "file\n"},
    (Req("/only-last/f.txt"), Req("/tf/real.txt"), Req("/tf/real.txt?x=1"), Req("/tf/other"),
     Req("/header/h.txt"), Req("/header/h.txt?inner=1"), Req("/cap/abc/def"), Req("/cap/x"),
     Req("/neg/", headers=(("User-Agent", "Mozilla"),)),
     Req("/neg/", headers=(("User-Agent", "GoogleBot/2.1"),)), Req("/dir/sub"), Req("/dir/file.txt"),
     Req("/dir/none")),
)

REDIRECTS = Deployment(
    "redirects",
    """
    server {
        listen 127.0.0.1:%PORT%;
        server_name example.com;
        root %PREFIX%/html;
        error_page 404 /404.html;
        location = /404.html { internal; }
        location /secret/ { internal; }
        location /to-secret { rewrite ^ /secret/page last; }
        location /secret/page { return 200 "secret reached\\n"; }
        location /e/ { error_page 418 = @teapot; return 418; }
        location @teapot { return 200 "teapot $uri\\n"; }
        location /rec/ {
            recursive_error_pages on;
            error_page 403 /rec/forbidden;
            error_page 404 /missing-too;
            location /rec/forbidden { return 404; }
            return 403;
        }
        location /norec/ {
            error_page 403 /norec/forbidden;
            location /norec/forbidden { return 404; }
            return 403;
        }
        location /noabs/ { absolute_redirect off; }
        location /nameredir/ { server_name_in_redirect on; }
        location /noport/ { port_in_redirect off; }
        location /ret/ { return 302 /ret-target$is_args$args; }
    }
    """,
    {"html/404.html": "custom 404\n", "html/noabs/d/x": "x\n", "html/nameredir/d/x": "x\n",
     "html/noport/d/x": "x\n"},
    (Req("/nothing"), Req("/404.html"), Req("/secret/page"), Req("/to-secret"), Req("/e/x"),
     Req("/rec/a"), Req("/norec/a"), Req("/noabs/d"), Req("/nameredir/d", "alias.example.com"),
     Req("/noport/d"), Req("/ret/?a=b"), Req("/ret/")),
)

HOPS = Deployment(
    "hops",
    """
    server {
        listen 127.0.0.1:%PORT%;
        server_name example.com;
        root %PREFIX%/html;
""" + "".join(f"        location = /h{i} {{ rewrite ^ /h{i + 1} last; }}\n" for i in range(12)) + """
        location = /h12 { return 200 "arrived $uri\n"; }
        location = /e0 { error_page 404 /e1; }
""" + "".join(f"        location = /e{i} {{ recursive_error_pages on; error_page 404 /e{i + 1}; }}\n"
              for i in range(1, 12)) + """
        location = /e12 { return 200 "error chain end\n"; }
        location = /set { set $args "a=$arg_b&c=d"; set $v "[$args]"; return 200 "$v $is_args\n"; }
        location = /uninit { set $later $unset_before; return 200 "<$later>\n"; }
        location = /unset_source { set $unset_before 1; }
    }
    """,
    {},
    tuple(Req(f"/h{i}") for i in (0, 1, 2, 3, 11)) + tuple(Req(f"/e{i}") for i in (0, 1, 2, 3, 11))
    + (Req("/set?b=7"), Req("/uninit")),
)

DEPLOYMENTS: tuple[Deployment, ...] = (WORDPRESS, LARAVEL, SPA, CANONICAL, LEGACY, MAINTENANCE_ON,
                                       MAINTENANCE_OFF, CACHE_BYPASS, GEO_SPLIT, IF_SURPRISES, REDIRECTS,
                                       HOPS)
