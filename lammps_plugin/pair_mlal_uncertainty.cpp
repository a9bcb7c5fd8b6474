/* ----------------------------------------------------------------------
   mlal: pair_style mlal, uncertainty part (pair_mlal.h; pair_mlal.cpp has the
   rest). Who wants gamma/sigma on a step (requesters), and their computation:
   per-member forces -> sigma, member energies -> energy sigma, gamma copied;
   on demand after the force call if its atoms have not moved since.
------------------------------------------------------------------------- */

#include "pair_mlal.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "update.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mpi.h>
#include <stdexcept>

using namespace LAMMPS_NS;

void PairMLAL::add_requester(Requester *r)
{
  if (std::find(requesters.begin(), requesters.end(), r) == requesters.end()) requesters.push_back(r);
}

void PairMLAL::remove_requester(Requester *r)
{
  requesters.erase(std::remove(requesters.begin(), requesters.end(), r), requesters.end());
}

bool PairMLAL::uncertainty_wanted(bigint ntimestep)
{
  if (unc_mode == UNC_NO) return false;
  if (unc_mode == UNC_ALWAYS) return true;
  bool want = false;
  // ask every requester: a compute's matchstep() also prunes its step list
  for (auto r : requesters) want = r->wants_uncertainty(ntimestep) || want;
  return want;
}

/* local positions and box, to tell whether atoms moved since the last force call */

void PairMLAL::snapshot(std::vector<double> &buf)
{
  int nlocal = atom->nlocal;
  buf.resize(3 * (size_t) nlocal + 9);
  if (nlocal) memcpy(buf.data(), atom->x[0], 3 * sizeof(double) * nlocal);
  double *b = &buf[3 * (size_t) nlocal];
  for (int c = 0; c < 3; c++) b[c] = domain->boxlo[c];
  for (int c = 0; c < 6; c++) b[3 + c] = domain->h[c];
}

void PairMLAL::ensure_uncertainty(const char *who)
{
  bigint step = update->ntimestep;
  int nlocal = atom->nlocal;
  // every decision below is taken collectively: the caller is collective
  int mine[2], all[2];
  mine[0] = (unc_step == step && uncertainty_nlocal() == nlocal) ? 1 : 0;    // have this step's
  mine[1] = (force_step == step && force_nlocal == nlocal && list) ? 1 : 0;   // atoms unmoved
  if (mine[1]) {
    std::vector<double> now;
    snapshot(now);
    mine[1] = now == force_x ? 1 : 0;
  }
  MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MIN, world);
  // within a run, values from this step's force call are the step's values even if a
  // fix (deform, recenter...) moved atoms afterwards, as for the potential energy
  if (all[0] && (all[1] || update->whichflag != 0)) return;
  if (!all[1])
    error->all(FLERR, "{}: gamma/sigma are not available on step {}: no force evaluation on this "
               "step or atoms moved since (last step with uncertainty: {}); issue 'run 0' first",
               who, step, unc_step);
  build_edges();
  if (nlocal > 0) try {
      mdl.evaluate(species_buf.data(), nlocal + atom->nghost, edge_index.data(), edge_vec.data(),
                   (int64_t) edge_i.size(), nlocal, true);
    } catch (const std::exception &e) {
      error->one(FLERR, "pair_style mlal: {}", e.what());
    }
  compute_uncertainty(nlocal, nlocal + atom->nghost);
}

/* per-member forces -> sigma_i; member energies -> energy sigma; gamma copied */

void PairMLAL::compute_uncertainty(int nlocal, int nall)
{
  int K = mdl.n_members();
  int64_t E = (int64_t) edge_i.size();
  int *type = atom->type;
  fmember.assign((size_t) nall * 3 * K, 0.0);
  const double *mg = nlocal > 0 ? mdl.member_edge_grad() : nullptr;
  for (int k = 0; k < K; k++) {
    const double *gk = mg + (size_t) k * E * 3;
    for (int64_t e = 0; e < E; e++) {
      double *fi = &fmember[((size_t) edge_i[e] * K + k) * 3];
      double *fj = &fmember[((size_t) edge_j[e] * K + k) * 3];
      for (int c = 0; c < 3; c++) {
        fi[c] += gk[3 * e + c];
        fj[c] -= gk[3 * e + c];
      }
    }
  }
  comm_mode = COMM_MEMBERS;
  comm->reverse_comm(this, 3 * K);

  gamma_atom.assign(nlocal, 0.0);
  sigma_atom.assign(nlocal, 0.0);
  esigma_atom.assign(nlocal, 0.0);
  const double *gam = nlocal > 0 ? mdl.gamma() : nullptr;
  const double *mae = nlocal > 0 ? mdl.member_atom_energy() : nullptr;
  std::vector<double> etot(K, 0.0);
  double gmax = 0.0, smax = 0.0;
  for (int i = 0; i < nlocal; i++) {
    if (map[type[i]] < 0) continue;
    const double *fi = &fmember[(size_t) i * K * 3];
    double mean[3] = {0.0, 0.0, 0.0};
    for (int k = 0; k < K; k++)
      for (int c = 0; c < 3; c++) mean[c] += fi[3 * k + c] / K;
    double var = 0.0;
    for (int k = 0; k < K; k++)
      for (int c = 0; c < 3; c++) var += (fi[3 * k + c] - mean[c]) * (fi[3 * k + c] - mean[c]);
    sigma_atom[i] = std::sqrt(var / K);
    double emean = 0.0, evar = 0.0;
    for (int k = 0; k < K; k++) emean += mae[(size_t) k * nlocal + i] / K;
    for (int k = 0; k < K; k++) {
      double d = mae[(size_t) k * nlocal + i] - emean;
      evar += d * d;
      etot[k] += mae[(size_t) k * nlocal + i];
    }
    esigma_atom[i] = std::sqrt(evar / K);
    gamma_atom[i] = gam[i];
    gmax = std::max(gmax, gam[i]);
    smax = std::max(smax, sigma_atom[i]);
  }
  double local_max[2] = {gmax, smax}, global_max[2];
  MPI_Allreduce(local_max, global_max, 2, MPI_DOUBLE, MPI_MAX, world);
  gmax_all = global_max[0];
  smax_all = global_max[1];
  std::vector<double> etot_all(K);
  MPI_Allreduce(etot.data(), etot_all.data(), K, MPI_DOUBLE, MPI_SUM, world);
  double emean = 0.0, evar = 0.0;
  for (int k = 0; k < K; k++) emean += etot_all[k] / K;
  for (int k = 0; k < K; k++) evar += (etot_all[k] - emean) * (etot_all[k] - emean);
  esigma_all = std::sqrt(evar / K);
  unc_step = update->ntimestep;
  unc_count++;
}
