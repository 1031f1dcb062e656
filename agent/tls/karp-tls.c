/*
 * karp-tls: the agent's HTTPS client, a verified TLS pipe; the agent's shell scripts write the HTTP.
 *
 *   karp-tls --connect HOST:PORT --name NAME --ca FILE [--timeout SECONDS] [GET]
 *   karp-tls --connect HOST:PORT --plain [--timeout SECONDS] [GET]
 *   GET: --get PATH --host HOST [--token-file FILE]
 *
 * Connects to HOST:PORT (an IPv4 or [IPv6] literal, or a name) and does a TLS 1.2 handshake (BearSSL,
 * linked statically) in which the server's chain must lead to a certificate of FILE, nothing else being
 * trusted, and the leaf must carry NAME in its subjectAltName: an IP address NAME as an iPAddress entry
 * of the same bytes, any other NAME as a dNSName entry (a "*." first label stands for exactly one
 * label); the subject CN is never looked at. NAME goes out as SNI when it is not an IP address. Only
 * after that handshake does it read stdin, and everything read goes to the server; what the server sends
 * goes to stdout until the server closes the connection. EOF on stdin ends nothing (the answer is still
 * to come: the request says "Connection: close"). --plain is the same pipe without TLS, for http://
 * health URLs, which never get a token.
 *
 * With --get, karp-tls writes the request itself instead of reading stdin ("GET PATH HTTP/1.0", Host, a
 * bearer token from the first line of FILE when it can be read, "Connection: close"): the agent's
 * periodic reads then cost one process, not a shell forked to write the request as well. FILE is read
 * only after the server verified, like stdin. HTTP/1.0, so that the answer comes without chunked framing
 * and the server closes the connection after it.
 *
 * The whole run, name lookup included, ends after --timeout seconds (default 10). Each failure is one
 * line on stderr (never the bytes that went through) and an exit code of enum exit_code below.
 */
#include <bearssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

enum exit_code {
	EXIT_DONE = 0,      /* the server closed the connection; all it sent is on stdout */
	EXIT_INTERNAL = 1,  /* out of memory, or the TLS engine could not start */
	EXIT_USAGE = 2,     /* bad arguments, or the --ca file holds no usable certificate */
	EXIT_CONNECT = 3,   /* name lookup or TCP connect failed */
	EXIT_HANDSHAKE = 4, /* TLS handshake failed, or the server's certificate did not verify */
	EXIT_TIMEOUT = 5,   /* --timeout passed */
	EXIT_IO = 6,        /* reading or writing failed after the handshake */
};

static const char usage[] = "usage: karp-tls --connect HOST:PORT (--name NAME --ca FILE | --plain) [--timeout SECONDS]"
			    " [--get PATH --host HOST [--token-file FILE]]";

static _Noreturn void fail(enum exit_code code, const char *fmt, ...)
{
	va_list ap;
	fputs("karp-tls: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* What the run is doing, for the timeout message (the handler may only write(), so the texts are fixed). */
enum step { LOOKUP, CONNECT, HANDSHAKE, EXCHANGE };
static volatile sig_atomic_t step;
static const char *const step_text[] = {"looking up the host", "connecting", "in the TLS handshake",
					 "waiting for the server to close"};

static void on_deadline(int sig)
{
	static const char head[] = "karp-tls: timed out ";
	const char *what = step_text[step];
	(void)sig;
	(void)!write(STDERR_FILENO, head, sizeof head - 1);
	(void)!write(STDERR_FILENO, what, strlen(what));
	(void)!write(STDERR_FILENO, "\n", 1);
	_exit(EXIT_TIMEOUT);
}

/* Seconds as digits with an optional fraction ("1", "3.7"), above 0 and at most a day. */
static int parse_seconds(const char *text, struct timeval *out)
{
	long whole = 0, micros = 0, scale = 100000;
	const char *p = text;
	if (*p < '0' || *p > '9')
		return 0;
	for (; *p >= '0' && *p <= '9'; p++)
		if ((whole = whole * 10 + (*p - '0')) > 86400)
			return 0;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return 0;
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			micros += (*p - '0') * scale;
	}
	if (*p != '\0' || (whole == 0 && micros == 0) || (whole == 86400 && micros > 0))
		return 0;
	out->tv_sec = whole;
	out->tv_usec = micros;
	return 1;
}

/* HOST:PORT or [IPV6]:PORT; host is copied into a buffer of size hostsz. */
static int parse_endpoint(const char *text, char *host, size_t hostsz, const char **port)
{
	const char *colon, *start = text, *end;
	if (*text == '[') {
		start = text + 1;
		end = strchr(start, ']');
		if (end == NULL || end[1] != ':')
			return 0;
		colon = end + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL)
			return 0;
		end = colon;
	}
	if (end == start || (size_t)(end - start) >= hostsz)
		return 0;
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	*port = colon + 1;
	long n = 0;
	for (const char *p = *port; *p; p++) {
		if (*p < '0' || *p > '9' || (n = n * 10 + (*p - '0')) > 65535)
			return 0;
	}
	return **port != '\0' && n > 0;
}

static int connect_to(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *found, *ai;
	int fd = -1, err = 0;
	step = LOOKUP;
	int rc = getaddrinfo(host, port, &hints, &found);
	if (rc != 0)
		fail(EXIT_CONNECT, "cannot look up %s: %s", host, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	step = CONNECT;
	for (ai = found; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(found);
	if (fd < 0)
		fail(EXIT_CONNECT, "cannot connect to %s port %s: %s", host, port, strerror(err));
	return fd;
}

/* ---- the trusted certificates (--ca) --------------------------------------------------------------- */

struct buffer {
	unsigned char *data;
	size_t len, cap;
};

static void buffer_append(void *ctx, const void *data, size_t len)
{
	struct buffer *b = ctx;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + len)
			cap *= 2;
		if ((b->data = realloc(b->data, cap)) == NULL)
			fail(EXIT_INTERNAL, "out of memory");
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

static void *copy_of(const void *data, size_t len)
{
	void *copy = malloc(len ? len : 1);
	if (copy == NULL)
		fail(EXIT_INTERNAL, "out of memory");
	return memcpy(copy, data, len);
}

static br_x509_trust_anchor *anchors;
static size_t anchor_count;

static void add_anchor(const char *file, const struct buffer *der)
{
	struct buffer dn = {0};
	br_x509_decoder_context decoder;
	br_x509_decoder_init(&decoder, buffer_append, &dn);
	br_x509_decoder_push(&decoder, der->data, der->len);
	const br_x509_pkey *key = br_x509_decoder_get_pkey(&decoder);
	if (key == NULL)
		fail(EXIT_USAGE, "--ca %s: certificate %zu cannot be decoded (BearSSL error %d)", file,
		     anchor_count + 1, br_x509_decoder_last_error(&decoder));
	if ((anchors = realloc(anchors, (anchor_count + 1) * sizeof *anchors)) == NULL)
		fail(EXIT_INTERNAL, "out of memory");
	br_x509_trust_anchor *anchor = &anchors[anchor_count++];
	anchor->dn.data = dn.data;
	anchor->dn.len = dn.len;
	/* Not a CA: trusted as this very server certificate ("direct trust"), never as an issuer. */
	anchor->flags = br_x509_decoder_isCA(&decoder) ? BR_X509_TA_CA : 0;
	anchor->pkey = *key;
	/* The key's bytes live in the decoder; the anchor needs copies of its own. */
	if (key->key_type == BR_KEYTYPE_RSA) {
		anchor->pkey.key.rsa.n = copy_of(key->key.rsa.n, key->key.rsa.nlen);
		anchor->pkey.key.rsa.e = copy_of(key->key.rsa.e, key->key.rsa.elen);
	} else {
		anchor->pkey.key.ec.q = copy_of(key->key.ec.q, key->key.ec.qlen);
	}
}

static void discard(void *ctx, const void *data, size_t len)
{
	(void)ctx, (void)data, (void)len;
}

/* Every CERTIFICATE of a PEM file; other PEM objects (keys, ...) are skipped. */
static void load_anchors(const char *file)
{
	struct buffer text = {0}, der = {0};
	char chunk[4096];
	FILE *in = fopen(file, "rb");
	if (in == NULL)
		fail(EXIT_USAGE, "cannot read --ca %s: %s", file, strerror(errno));
	for (size_t n; (n = fread(chunk, 1, sizeof chunk, in)) > 0;) {
		/* BearSSL's PEM decoder wants LF line ends; CRLF files are common enough. */
		for (char *cr; (cr = memchr(chunk, '\r', n)) != NULL; n--)
			memmove(cr, cr + 1, n - (size_t)(cr - chunk) - 1);
		buffer_append(&text, chunk, n);
		if (text.len > 4 << 20)
			fail(EXIT_USAGE, "--ca %s is larger than 4 MiB", file);
	}
	if (ferror(in))
		fail(EXIT_USAGE, "cannot read --ca %s: %s", file, strerror(errno));
	fclose(in);
	/* The decoder sees a last line only once it ends. */
	buffer_append(&text, "\n", 1);

	br_pem_decoder_context pem;
	int in_certificate = 0;
	br_pem_decoder_init(&pem);
	for (size_t done = 0; done < text.len;) {
		done += br_pem_decoder_push(&pem, text.data + done, text.len - done);
		switch (br_pem_decoder_event(&pem)) {
		case BR_PEM_BEGIN_OBJ:
			in_certificate = strcmp(br_pem_decoder_name(&pem), "CERTIFICATE") == 0 ||
					 strcmp(br_pem_decoder_name(&pem), "X509 CERTIFICATE") == 0;
			der.len = 0;
			br_pem_decoder_setdest(&pem, in_certificate ? buffer_append : discard, &der);
			break;
		case BR_PEM_END_OBJ:
			if (in_certificate)
				add_anchor(file, &der);
			break;
		case BR_PEM_ERROR:
			fail(EXIT_USAGE, "--ca %s is not valid PEM", file);
		}
	}
	if (anchor_count == 0)
		fail(EXIT_USAGE, "--ca %s holds no PEM certificate", file);
	free(text.data);
	free(der.data);
}

/* ---- the name the server must prove ---------------------------------------------------------------- */

static struct {
	const char *dns; /* a DNS name, or NULL for an IP address */
	unsigned char ip[16];
	size_t ip_len;
	int matched;     /* set once a verified chain's leaf was seen to carry it */
	int mismatched;
} expected;

static int dns_name_matches(const unsigned char *pattern, size_t len, const char *name)
{
	size_t name_len = strlen(name);
	if (len == 0 || memchr(pattern, '\0', len) != NULL)
		return 0;
	if (len == name_len && strncasecmp((const char *)pattern, name, name_len) == 0)
		return 1;
	/* "*.example.com": the wildcard is a whole first label and stands for exactly one label of NAME. */
	if (len > 2 && pattern[0] == '*' && pattern[1] == '.' && memchr(pattern + 2, '.', len - 2) != NULL) {
		const char *rest = strchr(name, '.');
		return rest != NULL && rest != name && strlen(rest) == len - 1 &&
		       strncasecmp(rest, (const char *)pattern + 1, len - 1) == 0;
	}
	return 0;
}

/* A DER element: what lies between p and end. */
struct der {
	const unsigned char *p, *end;
};

/* Takes the next element off `in`: its tag and its content; 0 when `in` holds no whole element. */
static int der_next(struct der *in, unsigned *tag, struct der *content)
{
	const unsigned char *p = in->p;
	size_t left = (size_t)(in->end - p), len;
	if (left < 2 || (p[0] & 0x1f) == 0x1f)
		return 0;
	*tag = p[0];
	len = p[1];
	p += 2, left -= 2;
	if (len & 0x80) {
		size_t bytes = len & 0x7f;
		if (bytes == 0 || bytes > 3 || bytes > left)
			return 0;
		for (len = 0; bytes > 0; bytes--, left--)
			len = len << 8 | *p++;
	}
	if (len > left)
		return 0;
	content->p = p;
	content->end = p + len;
	in->p = p + len;
	return 1;
}

enum { TAG_SEQUENCE = 0x30, TAG_OID = 0x06, TAG_BOOLEAN = 0x01, TAG_OCTETS = 0x04, TAG_EXTENSIONS = 0xa3,
       TAG_SAN_DNS = 0x82, TAG_SAN_IP = 0x87 };

/*
 * Walks Certificate > TBSCertificate > [3] extensions > the subjectAltName extension (2.5.29.17) >
 * GeneralNames (RFC 5280 4.1, 4.2.1.6). BearSSL checked the certificate's signature and structure
 * already; this only reads it, bounds-checked. Done here because BearSSL matches dNSName entries only
 * and falls back to the subject CN without a subjectAltName.
 */
static int leaf_names_expected(const unsigned char *cert, size_t len)
{
	static const unsigned char san_oid[] = {0x55, 0x1d, 0x11};
	struct der in = {cert, cert + len}, outer, tbs, field, extensions, extension, part, names, name;
	unsigned tag;
	if (!der_next(&in, &tag, &outer) || tag != TAG_SEQUENCE || !der_next(&outer, &tag, &tbs) || tag != TAG_SEQUENCE)
		return 0;
	while (der_next(&tbs, &tag, &field)) {
		if (tag != TAG_EXTENSIONS)
			continue;
		if (!der_next(&field, &tag, &extensions) || tag != TAG_SEQUENCE)
			return 0;
		while (der_next(&extensions, &tag, &extension)) {
			if (tag != TAG_SEQUENCE || !der_next(&extension, &tag, &part) || tag != TAG_OID)
				return 0;
			if ((size_t)(part.end - part.p) != sizeof san_oid || memcmp(part.p, san_oid, sizeof san_oid) != 0)
				continue;
			if (!der_next(&extension, &tag, &part) || (tag == TAG_BOOLEAN && !der_next(&extension, &tag, &part)))
				return 0;
			if (tag != TAG_OCTETS || !der_next(&part, &tag, &names) || tag != TAG_SEQUENCE)
				return 0;
			while (der_next(&names, &tag, &name)) {
				size_t n = (size_t)(name.end - name.p);
				if (expected.dns != NULL && tag == TAG_SAN_DNS && dns_name_matches(name.p, n, expected.dns))
					return 1;
				if (expected.dns == NULL && tag == TAG_SAN_IP && n == expected.ip_len &&
				    memcmp(name.p, expected.ip, n) == 0)
					return 1;
			}
		}
	}
	return 0;
}

/*
 * The X.509 engine of the handshake: BearSSL's "minimal" engine validates the chain against the anchors
 * (signatures, validity dates, CA constraints, key usage) with no name to match; this wrapper keeps the
 * leaf certificate's bytes and, once the chain validated, requires NAME among its subjectAltNames.
 */
static br_x509_minimal_context minimal;
static struct {
	unsigned char der[16384];
	size_t len;
	int too_long;
	unsigned index; /* of the certificate being received; 0 is the leaf */
} leaf;

static void leaf_start_chain(const br_x509_class **ctx, const char *server_name)
{
	(void)ctx, (void)server_name;
	leaf.len = 0, leaf.too_long = 0, leaf.index = 0;
	minimal.vtable->start_chain(&minimal.vtable, NULL);
}

static void leaf_start_cert(const br_x509_class **ctx, uint32_t length)
{
	(void)ctx;
	if (leaf.index == 0)
		leaf.too_long = length > sizeof leaf.der;
	minimal.vtable->start_cert(&minimal.vtable, length);
}

static void leaf_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
	(void)ctx;
	if (leaf.index == 0 && !leaf.too_long) {
		if (leaf.len + len > sizeof leaf.der)
			leaf.too_long = 1;
		else
			memcpy(leaf.der + leaf.len, buf, len), leaf.len += len;
	}
	minimal.vtable->append(&minimal.vtable, buf, len);
}

static void leaf_end_cert(const br_x509_class **ctx)
{
	(void)ctx;
	leaf.index++;
	minimal.vtable->end_cert(&minimal.vtable);
}

static unsigned leaf_end_chain(const br_x509_class **ctx)
{
	(void)ctx;
	unsigned err = minimal.vtable->end_chain(&minimal.vtable);
	if (err != BR_ERR_X509_OK && err != 0)
		return err;
	if (leaf.too_long || !leaf_names_expected(leaf.der, leaf.len)) {
		expected.mismatched = 1;
		return BR_ERR_X509_BAD_SERVER_NAME;
	}
	expected.matched = 1;
	return err;
}

static const br_x509_pkey *leaf_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
	(void)ctx;
	return minimal.vtable->get_pkey(&minimal.vtable, usages);
}

static const br_x509_class leaf_check_class = {
	.context_size = sizeof(const br_x509_class *),
	.start_chain = leaf_start_chain,
	.start_cert = leaf_start_cert,
	.append = leaf_append,
	.end_cert = leaf_end_cert,
	.end_chain = leaf_end_chain,
	.get_pkey = leaf_get_pkey,
};
static const br_x509_class *leaf_check = &leaf_check_class;

/* ---- the connection ---------------------------------------------------------------------------------- */

static br_ssl_client_context client;
static unsigned char tls_buffer[BR_SSL_BUFSIZE_BIDI];

static void start_handshake(const char *name, const char *ca)
{
	if (inet_pton(AF_INET, name, expected.ip) == 1)
		expected.ip_len = 4;
	else if (inet_pton(AF_INET6, name, expected.ip) == 1)
		expected.ip_len = 16;
	else
		expected.dns = name;
	load_anchors(ca);
	br_ssl_client_init_full(&client, &minimal, anchors, anchor_count);
	br_ssl_engine_set_versions(&client.eng, BR_TLS12, BR_TLS12);
	br_ssl_engine_add_flags(&client.eng, BR_OPT_NO_RENEGOTIATION);
	br_ssl_engine_set_x509(&client.eng, &leaf_check);
	br_ssl_engine_set_buffer(&client.eng, tls_buffer, sizeof tls_buffer, 1);
	/* The name given here is sent as SNI; the leaf check above does the matching. */
	if (!br_ssl_client_reset(&client, expected.dns, 0))
		fail(EXIT_INTERNAL, "cannot start the TLS engine (BearSSL error %d)", br_ssl_engine_last_error(&client.eng));
}

static _Noreturn void handshake_failed(const char *name)
{
	int err = br_ssl_engine_last_error(&client.eng);
	if (expected.mismatched)
		fail(EXIT_HANDSHAKE, "the server's certificate does not name %s", name);
	switch (err) {
	case BR_ERR_X509_NOT_TRUSTED:
		fail(EXIT_HANDSHAKE, "the server's certificate is not signed by a CA of --ca");
	case BR_ERR_X509_EXPIRED:
		fail(EXIT_HANDSHAKE, "the server's certificate is expired or not yet valid");
	case BR_ERR_RECV_FATAL_ALERT + 70:
		fail(EXIT_HANDSHAKE, "the server refuses TLS 1.2 (protocol_version alert): karp-tls speaks TLS 1.2 only");
	case BR_ERR_RECV_FATAL_ALERT + 40:
		fail(EXIT_HANDSHAKE, "the server found no cipher suite in common (handshake_failure alert)");
	case BR_ERR_OK:
		fail(EXIT_HANDSHAKE, "the server closed the connection during the TLS handshake");
	}
	if (err >= BR_ERR_SEND_FATAL_ALERT)
		fail(EXIT_HANDSHAKE, "TLS handshake failed: karp-tls sent alert %d", err - BR_ERR_SEND_FATAL_ALERT);
	if (err >= BR_ERR_RECV_FATAL_ALERT)
		fail(EXIT_HANDSHAKE, "TLS handshake failed: the server sent alert %d", err - BR_ERR_RECV_FATAL_ALERT);
	fail(EXIT_HANDSHAKE, "TLS handshake failed (BearSSL error %d)", err);
}

static void write_all(int fd, const unsigned char *buf, size_t len, const char *what)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail(EXIT_IO, "cannot write to %s: %s", what, strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

/* --get: the request karp-tls writes itself, composed once the server verified (the token is read then). */
static const char *get_path, *get_host, *token_file;
static char request[8192];
static size_t request_len, request_sent;

/* A request line or header value: printable ASCII without spaces, so nothing can end the line early. */
static int header_safe(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (text[i] <= ' ' || text[i] >= 0x7f)
			return 0;
	return len > 0;
}

static void compose_request(void)
{
	char token[6144];
	size_t token_len = 0;
	int fd = token_file != NULL ? open(token_file, O_RDONLY | O_CLOEXEC) : -1;
	/* An unreadable token file means no token (an anonymous /readyz), as when the agent has none mounted. */
	if (fd >= 0) {
		ssize_t n;
		while (token_len < sizeof token && (n = read(fd, token + token_len, sizeof token - token_len)) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				break;
			token_len += (size_t)n;
		}
		close(fd);
		if (token_len == sizeof token)
			fail(EXIT_USAGE, "--token-file holds more than %zu bytes", sizeof token - 1);
		char *end = memchr(token, '\n', token_len);
		if (end != NULL)
			token_len = (size_t)(end - token);
		while (token_len > 0 && (token[token_len - 1] == '\r' || token[token_len - 1] == ' '))
			token_len--;
		if (token_len > 0 && !header_safe(token, token_len))
			fail(EXIT_USAGE, "--token-file: the token's first line holds a byte that a header cannot carry");
	}
	int n = token_len > 0 ? snprintf(request, sizeof request,
					 "GET %s HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer %.*s\r\nConnection: close\r\n\r\n",
					 get_path, get_host, (int)token_len, token)
			      : snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n",
					 get_path, get_host);
	explicit_bzero(token, sizeof token);
	if (n < 0 || (size_t)n >= sizeof request)
		fail(EXIT_USAGE, "the request does not fit in %zu bytes", sizeof request);
	request_len = (size_t)n;
}

/*
 * The TLS connection, handshake included: bytes move between the socket and BearSSL's engine, the
 * engine's application data to stdout, and stdin to the engine once the handshake completed with a
 * verified server.
 */
static void tls_pipe(int fd, const char *name)
{
	br_ssl_engine_context *engine = &client.eng;
	int stdin_open = 1;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
		fail(EXIT_INTERNAL, "cannot make the socket non-blocking: %s", strerror(errno));
	for (;;) {
		unsigned state = br_ssl_engine_current_state(engine);
		/* Application data moves only after the handshake, which ends after the leaf check. */
		int ready = (state & BR_SSL_SENDAPP) && expected.matched;
		unsigned char *buf;
		size_t len;
		if (state & BR_SSL_CLOSED) {
			if (step == EXCHANGE && br_ssl_engine_last_error(engine) == BR_ERR_OK)
				return;
			if (step == EXCHANGE)
				fail(EXIT_IO, "the TLS connection failed (BearSSL error %d)", br_ssl_engine_last_error(engine));
			handshake_failed(name);
		}
		if (expected.matched && state & (BR_SSL_SENDAPP | BR_SSL_RECVAPP))
			step = EXCHANGE;
		if (state & BR_SSL_RECVAPP) {
			buf = br_ssl_engine_recvapp_buf(engine, &len);
			write_all(STDOUT_FILENO, buf, len, "stdout");
			br_ssl_engine_recvapp_ack(engine, len);
			continue;
		}
		if (ready && stdin_open && get_path != NULL) {
			if (request_len == 0)
				compose_request();
			buf = br_ssl_engine_sendapp_buf(engine, &len);
			if (len > request_len - request_sent)
				len = request_len - request_sent;
			memcpy(buf, request + request_sent, len);
			br_ssl_engine_sendapp_ack(engine, len);
			request_sent += len;
			if (request_sent == request_len) {
				br_ssl_engine_flush(engine, 0);
				explicit_bzero(request, sizeof request);
				stdin_open = 0;
			}
			continue;
		}
		struct pollfd watch[2] = {
			{.fd = fd, .events = (short)((state & BR_SSL_RECVREC ? POLLIN : 0) | (state & BR_SSL_SENDREC ? POLLOUT : 0))},
			{.fd = STDIN_FILENO, .events = POLLIN},
		};
		if (poll(watch, ready && stdin_open ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail(EXIT_IO, "poll: %s", strerror(errno));
		}
		if (watch[0].revents & (POLLOUT | POLLERR | POLLHUP) && state & BR_SSL_SENDREC) {
			buf = br_ssl_engine_sendrec_buf(engine, &len);
			ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
			if (n > 0) {
				br_ssl_engine_sendrec_ack(engine, (size_t)n);
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				/* With stdin done only BearSSL's own reply to the server's close_notify is left to send. */
				if (step == EXCHANGE && !stdin_open)
					return;
				if (step == EXCHANGE)
					fail(EXIT_IO, "cannot write to the server: %s", strerror(errno));
				fail(EXIT_HANDSHAKE, "the server closed the connection during the TLS handshake: %s", strerror(errno));
			}
			continue;
		}
		if (watch[0].revents & (POLLIN | POLLERR | POLLHUP) && state & BR_SSL_RECVREC) {
			buf = br_ssl_engine_recvrec_buf(engine, &len);
			ssize_t n = read(fd, buf, len);
			if (n > 0) {
				br_ssl_engine_recvrec_ack(engine, (size_t)n);
			} else if (n == 0) {
				/* A server that closes TCP without close_notify still ended its answer. */
				if (step == EXCHANGE)
					return;
				handshake_failed(name);
			} else if (errno != EAGAIN && errno != EINTR) {
				if (step == EXCHANGE)
					fail(EXIT_IO, "cannot read from the server: %s", strerror(errno));
				fail(EXIT_HANDSHAKE, "TLS handshake failed: %s", strerror(errno));
			}
			continue;
		}
		if (ready && stdin_open && watch[1].revents != 0) {
			buf = br_ssl_engine_sendapp_buf(engine, &len);
			ssize_t n = (watch[1].revents & POLLNVAL) ? 0 : read(STDIN_FILENO, buf, len);
			if (n > 0) {
				br_ssl_engine_sendapp_ack(engine, (size_t)n);
				br_ssl_engine_flush(engine, 0);
			} else if (n == 0) {
				stdin_open = 0;
			} else if (errno != EINTR && errno != EAGAIN) {
				fail(EXIT_IO, "cannot read stdin: %s", strerror(errno));
			}
		}
	}
}

/* --plain: the same pipe over TCP alone. */
static void plain_pipe(int fd)
{
	unsigned char buf[4096];
	int stdin_open = get_path == NULL;
	step = EXCHANGE;
	if (get_path != NULL) {
		compose_request();
		write_all(fd, (const unsigned char *)request, request_len, "the server");
	}
	for (;;) {
		struct pollfd watch[2] = {{.fd = fd, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
		if (poll(watch, stdin_open ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail(EXIT_IO, "poll: %s", strerror(errno));
		}
		if (watch[0].revents != 0) {
			ssize_t n = read(fd, buf, sizeof buf);
			if (n == 0)
				return;
			if (n < 0 && errno != EINTR)
				fail(EXIT_IO, "cannot read from the server: %s", strerror(errno));
			if (n > 0)
				write_all(STDOUT_FILENO, buf, (size_t)n, "stdout");
		}
		if (stdin_open && watch[1].revents != 0) {
			ssize_t n = (watch[1].revents & POLLNVAL) ? 0 : read(STDIN_FILENO, buf, sizeof buf);
			if (n == 0)
				stdin_open = 0;
			else if (n < 0 && errno != EINTR)
				fail(EXIT_IO, "cannot read stdin: %s", strerror(errno));
			if (n > 0)
				write_all(fd, buf, (size_t)n, "the server");
		}
	}
}

int main(int argc, char **argv)
{
	const char *endpoint = NULL, *name = NULL, *ca = NULL, *timeout = "10", *port;
	int plain = 0;
	char host[256];
	struct itimerval deadline = {0};

	for (int i = 1; i < argc; i++) {
		const char **value = strcmp(argv[i], "--connect") == 0   ? &endpoint
				     : strcmp(argv[i], "--name") == 0    ? &name
				     : strcmp(argv[i], "--ca") == 0      ? &ca
				     : strcmp(argv[i], "--timeout") == 0 ? &timeout
				     : strcmp(argv[i], "--get") == 0     ? &get_path
				     : strcmp(argv[i], "--host") == 0    ? &get_host
				     : strcmp(argv[i], "--token-file") == 0 ? &token_file
									 : NULL;
		if (strcmp(argv[i], "--plain") == 0)
			plain = 1;
		else if (value == NULL || i + 1 == argc)
			fail(EXIT_USAGE, "%s", usage);
		else
			*value = argv[++i];
	}
	if (endpoint == NULL || (plain ? name != NULL || ca != NULL : name == NULL || ca == NULL))
		fail(EXIT_USAGE, "%s", usage);
	if (!parse_endpoint(endpoint, host, sizeof host, &port))
		fail(EXIT_USAGE, "--connect wants HOST:PORT or [IPV6]:PORT with a port of 1-65535");
	if (!parse_seconds(timeout, &deadline.it_value))
		fail(EXIT_USAGE, "--timeout wants seconds above 0 and at most 86400, e.g. 5 or 0.5");
	if (name != NULL && (*name == '\0' || strlen(name) > 253))
		fail(EXIT_USAGE, "--name wants a DNS name or an IP address");
	if ((get_path == NULL) != (get_host == NULL) || (token_file != NULL && get_path == NULL))
		fail(EXIT_USAGE, "--get and --host go together, and --token-file needs them");
	if (get_path != NULL && (get_path[0] != '/' || !header_safe(get_path, strlen(get_path))))
		fail(EXIT_USAGE, "--get wants a path that starts with / and has no spaces or control characters");
	if (get_host != NULL && !header_safe(get_host, strlen(get_host)))
		fail(EXIT_USAGE, "--host wants HOST[:PORT] without spaces or control characters");
	if (plain && token_file != NULL)
		fail(EXIT_USAGE, "--token-file wants TLS: a token never goes out without --name and --ca");

	/* A reader of stdout that went away shows up as a write error, not as a silent death. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_deadline);
	if (setitimer(ITIMER_REAL, &deadline, NULL) != 0)
		fail(EXIT_INTERNAL, "cannot set the deadline: %s", strerror(errno));

	if (!plain)
		start_handshake(name, ca);
	int fd = connect_to(host, port);
	if (plain)
		plain_pipe(fd);
	else {
		step = HANDSHAKE;
		tls_pipe(fd, name);
	}
	return EXIT_DONE;
}
