/* mlal: loading and evaluating the TorchScript ensemble (docs/model_format.md). */
#include "mlal_model.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <fstream>
#include <stdexcept>

namespace mlal {

namespace {
constexpr const char *kFormatName = "mlal-ensemble";
constexpr int64_t kFormatVersion = 1;

std::string first_line(const std::string &s)
{
  auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
}
}    // namespace

struct MlalModel::Impl {
  torch::jit::Module module;
  torch::Tensor atom_energy, edge_grad, member_atom_energy, member_edge_grad, gamma;
};

MlalModel::MlalModel() : impl_(new Impl) {}
MlalModel::~MlalModel() = default;

void MlalModel::set_num_threads(int n)
{
  if (n > 0 && torch::get_num_threads() != n) torch::set_num_threads(n);
}

void MlalModel::load(const std::string &path)
{
  if (!std::ifstream(path).good()) throw std::runtime_error("mlal model file not found: " + path);
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, torch::kCPU);
  } catch (const std::exception &e) {
    throw std::runtime_error(path + " is not a readable TorchScript file (corrupt or truncated?): " +
                             first_line(e.what()));
  }
  try {
    if (!module.hasattr("format_name") || !module.attr("format_name").isString() ||
        module.attr("format_name").toStringRef() != kFormatName)
      throw std::runtime_error(path + " is a TorchScript file but not an mlal model (no format_name '" +
                               std::string(kFormatName) + "')");
    auto version = module.attr("format_version");
    if (!version.isInt() || version.toInt() != kFormatVersion)
      throw std::runtime_error(path + " has mlal format version " +
                               (version.isInt() ? std::to_string(version.toInt()) : "?") +
                               "; this plugin reads version " + std::to_string(kFormatVersion) +
                               ". Re-export it with `mlal deploy`.");
    std::vector<std::string> species;
    for (const auto &s : module.attr("species").toListRef()) species.push_back(s.toStringRef());
    double cutoff = module.attr("cutoff").toDouble();
    int n_members = (int) module.attr("n_members").toInt();
    std::string dtype = module.attr("dtype_name").toStringRef();
    if (species.empty()) throw std::runtime_error(path + ": model has no species");
    if (!(cutoff > 0.0)) throw std::runtime_error(path + ": model cutoff must be > 0");
    if (n_members < 1) throw std::runtime_error(path + ": model n_members must be >= 1");
    if (dtype != "float64" && dtype != "float32")
      throw std::runtime_error(path + ": unsupported dtype_name '" + dtype + "'");
    module.eval();
    impl_->module = module;
    path_ = path;
    species_ = species;
    cutoff_ = cutoff;
    n_members_ = n_members;
    float64_ = dtype == "float64";
  } catch (const c10::Error &e) {
    throw std::runtime_error(path + ": missing or malformed model attribute: " + first_line(e.what()));
  }
}

void MlalModel::evaluate(const int64_t *species, int64_t n_all, const int64_t *edge_index,
                         const double *edge_vec, int64_t n_edges, int64_t n_local, bool uncertainty)
{
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  // from_blob does not copy; the buffers outlive the call.
  auto t_species = torch::from_blob(const_cast<int64_t *>(species), {n_all}, i64);
  auto t_index = torch::from_blob(const_cast<int64_t *>(edge_index), {2, n_edges}, i64);
  auto t_vec = torch::from_blob(const_cast<double *>(edge_vec), {n_edges, 3}, f64);
  if (!float64_) t_vec = t_vec.to(torch::kFloat32);

  std::vector<torch::IValue> inputs{t_species, t_index, t_vec, n_local, uncertainty};
  torch::IValue result;
  try {
    result = impl_->module.forward(inputs);
  } catch (const std::exception &e) {
    throw std::runtime_error("mlal model forward() failed: " + first_line(e.what()));
  }
  if (!result.isGenericDict()) throw std::runtime_error("mlal model forward() did not return a dict");
  auto out = result.toGenericDict();
  auto get = [&](const char *key) -> torch::Tensor {
    auto it = out.find(key);
    if (it == out.end()) throw std::runtime_error(std::string("mlal model output lacks '") + key + "'");
    return it->value().toTensor().to(torch::kFloat64).contiguous();
  };
  impl_->atom_energy = get("atom_energy");
  impl_->edge_grad = get("edge_grad");
  if (impl_->atom_energy.numel() != n_local || impl_->edge_grad.numel() != 3 * n_edges)
    throw std::runtime_error("mlal model returned outputs of the wrong shape");
  if (uncertainty) {
    impl_->member_atom_energy = get("member_atom_energy");
    impl_->member_edge_grad = get("member_edge_grad");
    impl_->gamma = get("gamma");
    if (impl_->member_atom_energy.numel() != n_members_ * n_local ||
        impl_->member_edge_grad.numel() != n_members_ * 3 * n_edges || impl_->gamma.numel() != n_local)
      throw std::runtime_error("mlal model returned uncertainty outputs of the wrong shape");
  }
}

const double *MlalModel::atom_energy() const { return impl_->atom_energy.data_ptr<double>(); }
const double *MlalModel::edge_grad() const { return impl_->edge_grad.data_ptr<double>(); }
const double *MlalModel::member_atom_energy() const
{
  return impl_->member_atom_energy.data_ptr<double>();
}
const double *MlalModel::member_edge_grad() const
{
  return impl_->member_edge_grad.data_ptr<double>();
}
const double *MlalModel::gamma() const { return impl_->gamma.data_ptr<double>(); }

}    // namespace mlal
