/* -*- c++ -*- ----------------------------------------------------------
   mlal: pair_style mlal, an ensemble machine-learning potential with
   per-atom extrapolation grade (gamma) and ensemble force spread (sigma).

   pair_style mlal [nthreads N] [uncertainty yes|no|always]
   pair_coeff * * model.pt El1 El2 ...   (one element, or NULL under hybrid, per type)
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_MLAL_H
#define LMP_PAIR_MLAL_H

#include "pair.h"

#include "mlal_model.h"

#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairMLAL : public Pair {
 public:
  PairMLAL(class LAMMPS *);
  ~PairMLAL() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  void setup() override;
  void write_restart(FILE *) override;
  void read_restart(FILE *) override;
  void write_restart_settings(FILE *) override;
  void read_restart_settings(FILE *) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;
  double memory_usage() override;

  // ---- uncertainty interface for compute mlal/atom and fix mlal/extrapolation
  enum { UNC_NO = 0, UNC_YES = 1, UNC_ALWAYS = 2 };
  // Asked at every force evaluation: does anybody want gamma/sigma at this step?
  struct Requester {
    virtual bool wants_uncertainty(bigint ntimestep) = 0;
   protected:
    ~Requester() = default;    // not virtual: never deleted through this interface
  };
  void add_requester(Requester *);
  void remove_requester(Requester *);
  int uncertainty_mode() const { return unc_mode; }
  // Step of the last force evaluation with uncertainty (-1: none yet). The
  // per-atom arrays below are valid for the local atoms of that evaluation.
  bigint uncertainty_step() const { return unc_step; }
  int uncertainty_nlocal() const { return (int) gamma_atom.size(); }
  const std::string &element_of_type(int t) const { return type_element[t]; }
  const double *atom_gamma() const { return gamma_atom.data(); }
  const double *atom_sigma() const { return sigma_atom.data(); }
  const double *atom_energy_sigma() const { return esigma_atom.data(); }
  double gamma_max() const { return gmax_all; }        // over all ranks
  double sigma_max() const { return smax_all; }        // over all ranks (eV/A)
  double energy_sigma() const { return esigma_all; }   // of the total energy (eV)
  bigint uncertainty_count() const { return unc_count; }    // evaluations with uncertainty so far
  const mlal::MlalModel &model() const { return mdl; }
  // Make gamma/sigma current for this step if no force evaluation with uncertainty
  // happened on it (e.g. compute invoked from Python after a run): a second, force-free
  // model evaluation on the positions of the last force call. Errors out if the atoms
  // may have moved since then. Collective: call on all ranks.
  void ensure_uncertainty(const char *who);

 protected:
  mlal::MlalModel mdl;
  bool model_loaded;
  std::string restart_missing;    // model path from a restart file that could not be read
  std::vector<std::string> type_element;    // [ntypes+1]: element name or "NULL"
  int *map;                                 // [ntypes+1]: model species index or -1
  double cut, cutsq_model;
  int nthreads, unc_mode;

  std::vector<Requester *> requesters;
  bigint unc_step, force_step;    // last step with uncertainty / with any force call
  int force_nlocal = -1;
  bigint unc_count = 0;
  std::vector<double> force_x;    // local positions and box of the last force call
  std::vector<double> gamma_atom, sigma_atom, esigma_atom;
  double gmax_all, smax_all, esigma_all;

  // scratch, reused between steps
  std::vector<int64_t> species_buf, edge_index;
  std::vector<double> edge_vec;
  std::vector<int> edge_i, edge_j;
  std::vector<double> fmember;    // [nall][K][3] per-member forces
  enum { COMM_F = 0, COMM_FV = 1, COMM_MEMBERS = 2 };
  int comm_mode;

  void allocate();
  void load_model(const std::string &path, const std::vector<std::string> &elements);
  bool uncertainty_wanted(bigint ntimestep);
  void build_edges();
  void compute_uncertainty(int nlocal, int nall);
  void snapshot(std::vector<double> &);
};

}    // namespace LAMMPS_NS

#endif
