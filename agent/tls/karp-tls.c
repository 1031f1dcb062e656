/*
 * karp-tls: the agent's HTTPS client, a verified TLS pipe; the agent's shell scripts write the HTTP.
 *
 *   karp-tls --connect HOST:PORT --name NAME --ca FILE [--timeout SECONDS]
 *   karp-tls --connect HOST:PORT --plain [--timeout SECONDS]
 *
 * Connects to HOST:PORT (an IPv4 or [IPv6] literal, or a name) and does a TLS 1.2 or 1.3 handshake in
 * which the server's chain must lead to a certificate of FILE (nothing else is trusted) and the leaf must
 * carry NAME as a subjectAltName: an IP address NAME an iPAddress entry of the same bytes, any other NAME
 * a dNSName entry (a "*." first label stands for exactly one label). NAME goes out as SNI when it is not an
 * IP address. Only after that handshake does it read stdin, and everything read goes to the server; what
 * the server sends goes to stdout until the server closes the connection. EOF on stdin ends nothing (the
 * answer is still to come: the request says "Connection: close"). --plain is the same pipe without TLS,
 * for http:// health URLs, which never get a token.
 *
 * The whole run, name lookup included, ends after --timeout seconds (default 10). Exit codes, each with
 * one line on stderr (never the bytes that went through):
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>

#include <arpa/inet.h>
#include <errno.h>
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
	EXIT_INTERNAL = 1,  /* the TLS library could not be set up */
	EXIT_USAGE = 2,     /* bad arguments, or the --ca file cannot be loaded */
	EXIT_CONNECT = 3,   /* name lookup or TCP connect failed */
	EXIT_HANDSHAKE = 4, /* TLS handshake failed, or the server's certificate did not verify */
	EXIT_TIMEOUT = 5,   /* --timeout passed */
	EXIT_IO = 6,        /* reading or writing failed after the handshake */
};

static const char usage[] =
	"usage: karp-tls --connect HOST:PORT (--name NAME --ca FILE | --plain) [--timeout SECONDS]";

static void fail(enum exit_code code, const char *fmt, ...)
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
	step = 0;
	int rc = getaddrinfo(host, port, &hints, &found);
	if (rc != 0)
		fail(EXIT_CONNECT, "cannot look up %s: %s", host, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	step = 1;
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

/* The name the server must prove, as the leaf certificate's subjectAltName must carry it. */
static struct {
	const char *dns;        /* a DNS name, or NULL for an IP address */
	unsigned char ip[16];
	size_t ip_len;
	int matched;            /* set once the leaf was seen to carry it */
} expected;

static int dns_name_matches(const unsigned char *pattern, int len, const char *name)
{
	size_t name_len = strlen(name);
	if (len <= 0 || memchr(pattern, '\0', (size_t)len) != NULL)
		return 0;
	if ((size_t)len == name_len && strncasecmp((const char *)pattern, name, name_len) == 0)
		return 1;
	/* "*.example.com": the wildcard is a whole first label and stands for exactly one label of NAME. */
	if (len > 2 && pattern[0] == '*' && pattern[1] == '.' && memchr(pattern + 2, '.', (size_t)len - 2) != NULL) {
		const char *rest = strchr(name, '.');
		size_t rest_len = rest ? strlen(rest) : 0;
		return rest != NULL && rest != name && rest_len == (size_t)len - 1 &&
		       strncasecmp(rest, (const char *)pattern + 1, rest_len) == 0;
	}
	return 0;
}

/*
 * Matched here rather than with wolfSSL_check_domain_name or X509_VERIFY_PARAM_set1_ip_asc: wolfSSL
 * 5.5.4 falls back to the subject CN when a certificate has no subjectAltName, and compares IP addresses
 * as text against every kind of entry (so a dNSName "*.0.0.1" would pass for 127.0.0.1).
 */
static int leaf_names_expected(WOLFSSL_X509 *leaf)
{
	WOLFSSL_STACK *names = wolfSSL_X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	int found = 0;
	for (int i = 0; names != NULL && i < wolfSSL_sk_GENERAL_NAME_num(names) && !found; i++) {
		WOLFSSL_GENERAL_NAME *entry = wolfSSL_sk_GENERAL_NAME_value(names, i);
		if (entry == NULL)
			continue;
		if (expected.dns != NULL && entry->type == ASN_DNS_TYPE)
			found = dns_name_matches(wolfSSL_ASN1_STRING_data(entry->d.dNSName),
						 wolfSSL_ASN1_STRING_length(entry->d.dNSName), expected.dns);
		else if (expected.dns == NULL && entry->type == ASN_IP_TYPE)
			found = wolfSSL_ASN1_STRING_length(entry->d.iPAddress) == (int)expected.ip_len &&
				memcmp(wolfSSL_ASN1_STRING_data(entry->d.iPAddress), expected.ip, expected.ip_len) == 0;
	}
	if (names != NULL)
		wolfSSL_sk_GENERAL_NAME_pop_free(names, wolfSSL_GENERAL_NAME_free);
	return found;
}

static int name_mismatch;

/* Runs inside the handshake after wolfSSL checked the chain: a leaf without NAME fails the handshake. */
static int verify_leaf(int chain_ok, WOLFSSL_X509_STORE_CTX *store)
{
	if (!chain_ok)
		return 0;
	if (wolfSSL_X509_STORE_CTX_get_error_depth(store) != 0)
		return 1;
	WOLFSSL_X509 *leaf = wolfSSL_X509_STORE_CTX_get_current_cert(store);
	if (leaf == NULL || !leaf_names_expected(leaf)) {
		name_mismatch = 1;
		return 0;
	}
	expected.matched = 1;
	return 1;
}

static const char *tls_error(WOLFSSL *ssl, int ret)
{
	static char text[WOLFSSL_MAX_ERROR_SZ];
	wolfSSL_ERR_error_string_n((unsigned long)wolfSSL_get_error(ssl, ret), text, sizeof text);
	return text;
}

static WOLFSSL *handshake(int fd, const char *name, const char *ca)
{
	if (inet_pton(AF_INET, name, expected.ip) == 1)
		expected.ip_len = 4;
	else if (inet_pton(AF_INET6, name, expected.ip) == 1)
		expected.ip_len = 16;
	else
		expected.dns = name;

	if (wolfSSL_Init() != WOLFSSL_SUCCESS)
		fail(EXIT_INTERNAL, "cannot initialise wolfSSL");
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
	if (ctx == NULL || wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS)
		fail(EXIT_INTERNAL, "cannot set up a TLS client");
	/* Only this file is trusted: wolfSSL loads no system store unless asked to. */
	int rc = wolfSSL_CTX_load_verify_locations(ctx, ca, NULL);
	if (rc != WOLFSSL_SUCCESS) {
		char text[WOLFSSL_MAX_ERROR_SZ];
		wolfSSL_ERR_error_string_n((unsigned long)rc, text, sizeof text);
		fail(EXIT_USAGE, "cannot load the CA certificates of --ca %s: %s", ca, text);
	}
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, verify_leaf);
	WOLFSSL *ssl = wolfSSL_new(ctx);
	if (ssl == NULL || wolfSSL_set_fd(ssl, fd) != WOLFSSL_SUCCESS)
		fail(EXIT_INTERNAL, "cannot set up a TLS connection");
	if (expected.dns != NULL &&
	    wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, name, (unsigned short)strlen(name)) != WOLFSSL_SUCCESS)
		fail(EXIT_INTERNAL, "cannot set the server name indication");

	step = 2;
	rc = wolfSSL_connect(ssl);
	if (name_mismatch)
		fail(EXIT_HANDSHAKE, "the server's certificate does not name %s", name);
	if (rc != WOLFSSL_SUCCESS)
		fail(EXIT_HANDSHAKE, "TLS handshake failed: %s", tls_error(ssl, rc));
	if (!expected.matched)
		fail(EXIT_HANDSHAKE, "the server's certificate was not checked for %s", name);
	return ssl;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail(EXIT_IO, "cannot write to stdout: %s", strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

/* One read from the server to stdout; 0 once the server closed the connection. */
static int server_to_stdout(WOLFSSL *ssl, int fd)
{
	char buf[4096];
	int n;
	if (ssl == NULL) {
		n = (int)read(fd, buf, sizeof buf);
		if (n < 0 && errno != EINTR)
			fail(EXIT_IO, "cannot read from the server: %s", strerror(errno));
	} else {
		n = wolfSSL_read(ssl, buf, sizeof buf);
		if (n <= 0) {
			int err = wolfSSL_get_error(ssl, n);
			if (err == WOLFSSL_ERROR_ZERO_RETURN || err == SOCKET_PEER_CLOSED_E)
				return 0;
			if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
				return 1;
			fail(EXIT_IO, "cannot read from the server: %s", tls_error(ssl, n));
		}
	}
	if (n > 0)
		write_all(STDOUT_FILENO, buf, (size_t)n);
	return n != 0;
}

/* One read from stdin to the server; 0 at EOF. */
static int stdin_to_server(WOLFSSL *ssl, int fd)
{
	char buf[4096];
	ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
	if (n < 0 && errno == EINTR)
		return 1;
	if (n < 0)
		fail(EXIT_IO, "cannot read stdin: %s", strerror(errno));
	if (n == 0)
		return 0;
	if (ssl != NULL) {
		int sent = wolfSSL_write(ssl, buf, (int)n);
		if (sent != n)
			fail(EXIT_IO, "cannot write to the server: %s", tls_error(ssl, sent));
	} else {
		for (char *p = buf; n > 0;) {
			ssize_t sent = send(fd, p, (size_t)n, MSG_NOSIGNAL);
			if (sent < 0 && errno == EINTR)
				continue;
			if (sent <= 0)
				fail(EXIT_IO, "cannot write to the server: %s", strerror(errno));
			p += sent;
			n -= sent;
		}
	}
	return 1;
}

static void pipe_until_server_closes(WOLFSSL *ssl, int fd)
{
	struct pollfd watch[2] = {{.fd = fd, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
	int stdin_open = 1;
	step = 3;
	for (;;) {
		/* Records wolfSSL already decrypted are not visible to poll. */
		if (ssl == NULL || wolfSSL_pending(ssl) == 0) {
			if (poll(watch, stdin_open ? 2 : 1, -1) < 0) {
				if (errno == EINTR)
					continue;
				fail(EXIT_IO, "poll: %s", strerror(errno));
			}
		} else {
			watch[0].revents = POLLIN;
		}
		if (watch[0].revents != 0 && !server_to_stdout(ssl, fd))
			return;
		if (stdin_open && watch[1].revents != 0)
			stdin_open = (watch[1].revents & POLLNVAL) == 0 && stdin_to_server(ssl, fd);
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

	/* A server or reader that went away shows up as a write error, not as a silent death. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_deadline);
	if (setitimer(ITIMER_REAL, &deadline, NULL) != 0)
		fail(EXIT_INTERNAL, "cannot set the deadline: %s", strerror(errno));

	int fd = connect_to(host, port);
	WOLFSSL *ssl = plain ? NULL : handshake(fd, name, ca);
	pipe_until_server_closes(ssl, fd);
	return EXIT_DONE;
}
