// The baseline lumen::serve is measured against: a bare HTTP server on the same library
// (Boost.Beast on Asio), answering "hello" on every path, with the same threads and socket
// options as lumen's front door (an io_context per thread, a connection on one of them) and
// nothing else: no routing, no replicas, no limits.
#pragma once

#include <utility>  // before Asio: Boost 1.74's asio needs std::exchange declared under C++20

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <memory>
#include <thread>
#include <vector>

namespace bench {

class BareHttpServer {
 public:
  // Listens on 127.0.0.1:port (0: any free port) with `threads` I/O threads.
  BareHttpServer(unsigned short port, int threads) : ios_(make_contexts(threads)), acceptor_(*ios_.front()) {
    namespace net = boost::asio;
    net::ip::tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(net::socket_base::max_listen_connections);
    accept();
    for (auto& io : ios_) work_.push_back(net::make_work_guard(*io));
    for (auto& io : ios_) threads_.emplace_back([io = io.get()] { io->run(); });
  }
  ~BareHttpServer() {
    for (auto& io : ios_) io->stop();
    for (auto& t : threads_) t.join();
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }

 private:
  class Session : public std::enable_shared_from_this<Session> {
   public:
    explicit Session(boost::asio::ip::tcp::socket&& s) : stream_(std::move(s)) {
      boost::beast::error_code ec;
      stream_.socket().set_option(boost::asio::ip::tcp::no_delay(true), ec);
    }
    void read() {
      req_ = {};
      boost::beast::http::async_read(stream_, buffer_, req_, [self = shared_from_this()](boost::beast::error_code ec, std::size_t) {
        if (!ec) self->write();
      });
    }

   private:
    void write() {
      namespace http = boost::beast::http;
      res_ = {};
      res_.version(11);
      res_.result(http::status::ok);
      res_.set(http::field::content_type, "text/plain; charset=utf-8");
      res_.body() = "hello";
      res_.keep_alive(req_.keep_alive());
      res_.prepare_payload();
      http::async_write(stream_, res_, [self = shared_from_this()](boost::beast::error_code ec, std::size_t) {
        if (!ec && self->res_.keep_alive()) self->read();
      });
    }
    boost::beast::tcp_stream stream_;
    boost::beast::flat_buffer buffer_;
    boost::beast::http::request<boost::beast::http::string_body> req_;
    boost::beast::http::response<boost::beast::http::string_body> res_;
  };

  static std::vector<std::unique_ptr<boost::asio::io_context>> make_contexts(int n) {
    std::vector<std::unique_ptr<boost::asio::io_context>> ios;
    for (int i = 0; i < std::max(n, 1); ++i) ios.push_back(std::make_unique<boost::asio::io_context>(1));
    return ios;
  }

  void accept() {
    auto& io = *ios_[next_];
    next_ = (next_ + 1) % ios_.size();
    acceptor_.async_accept(io.get_executor(), [this](boost::beast::error_code ec, boost::asio::ip::tcp::socket s) {
      if (ec) return;
      std::make_shared<Session>(std::move(s))->read();
      accept();
    });
  }

  std::vector<std::unique_ptr<boost::asio::io_context>> ios_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::size_t next_ = 0;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
};

}  // namespace bench
