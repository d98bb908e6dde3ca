#pragma once

// A fresh directory under the system's temp dir for one test, removed with
// everything in it when the test ends.

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace troupe::test {

class scratch_dir {
 public:
  explicit scratch_dir(const std::string& prefix = "troupe-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    path_ = ::mkdtemp(tmpl.data()) != nullptr ? tmpl : std::string();
  }
  ~scratch_dir() {
    std::error_code ec;
    if (!path_.empty()) {
      std::filesystem::remove_all(path_, ec);
    }
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace troupe::test
