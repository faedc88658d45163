#include "core/server/testing/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

namespace banyan::core::server::testing {

namespace {
using Clock = std::chrono::steady_clock;

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("connect failed: ") + std::strerror(errno));
  }
  return fd;
}

bool send_all(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads into `out` until closed or the deadline. Returns false on close.
bool read_until(int fd, std::string& out, Clock::time_point deadline, size_t stop_at = SIZE_MAX) {
  char buf[65536];
  while (Clock::now() < deadline && out.size() < stop_at) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 1)));
    if (r <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    out.append(buf, static_cast<size_t>(n));
  }
  return true;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Parses one response from raw bytes. Returns bytes consumed (0 = incomplete).
size_t parse_response(const std::string& raw, Response& r) {
  auto end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  std::string head = raw.substr(0, end);
  size_t pos = head.find("\r\n");
  std::string status_line = head.substr(0, pos);
  if (status_line.size() < 12) return 0;
  r.status = std::atoi(status_line.c_str() + 9);
  r.headers.clear();
  while (pos != std::string::npos) {
    size_t next = head.find("\r\n", pos + 2);
    std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      r.headers[lower(line.substr(0, colon))] = v;
    }
    pos = next;
  }
  size_t body_start = end + 4;
  if (r.status == 100) {  // interim response: parse the next one
    auto rest = raw.substr(body_start);
    size_t used = parse_response(rest, r);
    return used ? body_start + used : 0;
  }
  if (lower(r.headers["transfer-encoding"]) == "chunked") {
    std::string body;
    size_t p = body_start;
    for (;;) {
      auto eol = raw.find("\r\n", p);
      if (eol == std::string::npos) return 0;
      size_t len = std::stoul(raw.substr(p, eol - p), nullptr, 16);
      if (raw.size() < eol + 2 + len + 2) return 0;
      if (len == 0) {
        r.body = body;
        return eol + 4;
      }
      body += raw.substr(eol + 2, len);
      p = eol + 2 + len + 2;
    }
  }
  size_t len = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
  if (!r.headers.count("content-length") && lower(r.headers["connection"]) == "close") {
    r.body = raw.substr(body_start);
    return raw.size();
  }
  if (raw.size() < body_start + len) return 0;
  r.body = raw.substr(body_start, len);
  return body_start + len;
}
}  // namespace

Response http_request(uint16_t port, const std::string& method, const std::string& target,
                      const std::string& body,
                      const std::vector<std::pair<std::string, std::string>>& headers,
                      double timeout_s) {
  int fd = connect_to(port);
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  bool has_ct = false;
  for (const auto& [k, v] : headers) {
    req += k + ": " + v + "\r\n";
    has_ct = has_ct || lower(k) == "content-type";
  }
  if (!body.empty() && !has_ct) req += "Content-Type: application/json\r\n";
  if (!body.empty() || method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  Response r;
  if (send_all(fd, req)) {
    std::string raw;
    auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    while (Clock::now() < deadline) {
      bool open = read_until(fd, raw, std::min(deadline, Clock::now() + std::chrono::milliseconds(50)));
      Response tmp;
      if (parse_response(raw, tmp)) {
        r = tmp;
        break;
      }
      if (!open) break;
    }
  }
  ::close(fd);
  return r;
}

std::string raw_exchange(uint16_t port, const std::string& bytes, bool half_close, double timeout_s) {
  int fd = connect_to(port);
  std::string out;
  send_all(fd, bytes);
  if (half_close) ::shutdown(fd, SHUT_WR);
  read_until(fd, out, Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  ::close(fd);
  return out;
}

int raw_status(const std::string& raw) {
  Response r;
  if (!parse_response(raw, r)) {
    if (raw.rfind("HTTP/1.", 0) == 0 && raw.size() >= 12) return std::atoi(raw.c_str() + 9);
    return 0;
  }
  return r.status;
}

std::string raw_body(const std::string& raw) {
  Response r;
  parse_response(raw, r);
  return r.body;
}

Connection::Connection(uint16_t port) : fd_(connect_to(port)) {}
Connection::~Connection() { close(); }
bool Connection::send(const std::string& bytes) { return send_all(fd_, bytes); }
bool Connection::read_some(std::string& into, double timeout_s) {
  return read_until(fd_, into, Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
}
void Connection::half_close() { ::shutdown(fd_, SHUT_WR); }
void Connection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}
void Connection::set_linger_reset() {
  linger l{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

}  // namespace banyan::core::server::testing
