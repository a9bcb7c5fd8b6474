/* mlal: a loaded model file (docs/model_format.md), kept free of torch headers.
 *
 * MlalModel::load() checks format name and version and reads the attributes;
 * evaluate() runs forward() and keeps the outputs as contiguous float64 arrays
 * until the next call. Errors are returned as std::runtime_error with a message
 * meant for error->all(); nothing here talks to LAMMPS. */
#ifndef MLAL_MODEL_H
#define MLAL_MODEL_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mlal {

class MlalModel {
 public:
  MlalModel();
  ~MlalModel();

  // Throws std::runtime_error with a readable message on any problem.
  void load(const std::string &path);

  const std::string &path() const { return path_; }
  const std::vector<std::string> &species() const { return species_; }
  double cutoff() const { return cutoff_; }
  int n_members() const { return n_members_; }
  bool float64() const { return float64_; }

  // species[N], edge_index[2*E] (row 0 = centres, then row 1), edge_vec[3*E] in Å.
  void evaluate(const int64_t *species, int64_t n_all, const int64_t *edge_index,
                const double *edge_vec, int64_t n_edges, int64_t n_local, bool uncertainty);

  // Outputs of the last evaluate(), float64, row-major.
  const double *atom_energy() const;          // [n_local]
  const double *edge_grad() const;            // [E,3]
  const double *member_atom_energy() const;   // [K,n_local]   (uncertainty only)
  const double *member_edge_grad() const;     // [K,E,3]       (uncertainty only)
  const double *gamma() const;                // [n_local]     (uncertainty only)

  static void set_num_threads(int n);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  std::vector<std::string> species_;
  double cutoff_ = 0.0;
  int n_members_ = 0;
  bool float64_ = true;
};

}    // namespace mlal

#endif
