"""marshmallow schemas for every API request and response (input and output kept apart).

The OpenAPI document at ``/api/openapi.json`` is generated from these same classes, so the
contract suppliers read is the one the code enforces. Each job has its module: ``fields``
(strict text), ``loading`` (the request base and :func:`load`), ``problems``, ``resource``,
``oauth``, ``broker`` (counts and offers), ``purchases`` (reading them) and
``purchase_push`` (pushing them); every name is re-exported here.
"""

from __future__ import annotations

from infomediary.web.schemas.broker import AttributeSchema as AttributeSchema
from infomediary.web.schemas.broker import AttributesResponseSchema as AttributesResponseSchema
from infomediary.web.schemas.broker import AudienceSchema as AudienceSchema
from infomediary.web.schemas.broker import CellSchema as CellSchema
from infomediary.web.schemas.broker import CountRequestSchema as CountRequestSchema
from infomediary.web.schemas.broker import CountResponseSchema as CountResponseSchema
from infomediary.web.schemas.broker import Criteria as Criteria
from infomediary.web.schemas.broker import DemandRequestSchema as DemandRequestSchema
from infomediary.web.schemas.broker import DemandResponseSchema as DemandResponseSchema
from infomediary.web.schemas.fields import FieldError as FieldError
from infomediary.web.schemas.fields import MultilineText as MultilineText
from infomediary.web.schemas.fields import Text as Text
from infomediary.web.schemas.loading import RequestSchema as RequestSchema
from infomediary.web.schemas.loading import load as load
from infomediary.web.schemas.log import ConsistencyProofSchema as ConsistencyProofSchema
from infomediary.web.schemas.log import InclusionProofSchema as InclusionProofSchema
from infomediary.web.schemas.oauth import AUTH_METHODS as AUTH_METHODS
from infomediary.web.schemas.oauth import GRANT_TYPES as GRANT_TYPES
from infomediary.web.schemas.oauth import SCOPE_NAMES as SCOPE_NAMES
from infomediary.web.schemas.oauth import (
    ClientRegistrationRequestSchema as ClientRegistrationRequestSchema,
)
from infomediary.web.schemas.oauth import (
    ClientRegistrationResponseSchema as ClientRegistrationResponseSchema,
)
from infomediary.web.schemas.oauth import IntrospectionResponseSchema as IntrospectionResponseSchema
from infomediary.web.schemas.oauth import JwkSchema as JwkSchema
from infomediary.web.schemas.oauth import JwksSchema as JwksSchema
from infomediary.web.schemas.oauth import MetadataSchema as MetadataSchema
from infomediary.web.schemas.oauth import OAuthErrorSchema as OAuthErrorSchema
from infomediary.web.schemas.oauth import TokenActionRequestSchema as TokenActionRequestSchema
from infomediary.web.schemas.oauth import TokenRequestSchema as TokenRequestSchema
from infomediary.web.schemas.oauth import TokenResponseSchema as TokenResponseSchema
from infomediary.web.schemas.offers import AcceptedSchema as AcceptedSchema
from infomediary.web.schemas.offers import OfferCreatedSchema as OfferCreatedSchema
from infomediary.web.schemas.offers import OfferListRequestSchema as OfferListRequestSchema
from infomediary.web.schemas.offers import OfferListSchema as OfferListSchema
from infomediary.web.schemas.offers import OfferRequestSchema as OfferRequestSchema
from infomediary.web.schemas.offers import OfferSummarySchema as OfferSummarySchema
from infomediary.web.schemas.offers import OfferTotalsSchema as OfferTotalsSchema
from infomediary.web.schemas.offers import OfferViewSchema as OfferViewSchema
from infomediary.web.schemas.problems import (
    BudgetExhaustedProblemSchema as BudgetExhaustedProblemSchema,
)
from infomediary.web.schemas.problems import ProblemSchema as ProblemSchema
from infomediary.web.schemas.purchase_push import PushImportedSchema as PushImportedSchema
from infomediary.web.schemas.purchase_push import PushJobSchema as PushJobSchema
from infomediary.web.schemas.purchase_push import PushLineSchema as PushLineSchema
from infomediary.web.schemas.purchase_push import PushQueuedSchema as PushQueuedSchema
from infomediary.web.schemas.purchase_push import load_push as load_push
from infomediary.web.schemas.purchases import PurchaseLineSchema as PurchaseLineSchema
from infomediary.web.schemas.purchases import (
    PurchaseListRequestSchema as PurchaseListRequestSchema,
)
from infomediary.web.schemas.purchases import PurchaseListSchema as PurchaseListSchema
from infomediary.web.schemas.purchases import (
    PurchasesRefusedProblemSchema as PurchasesRefusedProblemSchema,
)
from infomediary.web.schemas.resource import AddressSchema as AddressSchema
from infomediary.web.schemas.resource import DemographicsSchema as DemographicsSchema
from infomediary.web.schemas.resource import IdentitySchema as IdentitySchema
from infomediary.web.schemas.resource import MeResponseSchema as MeResponseSchema
from infomediary.web.schemas.resource import PolicyDeniedProblemSchema as PolicyDeniedProblemSchema
from infomediary.web.schemas.resource import PreferencesSchema as PreferencesSchema
from infomediary.web.schemas.resource import WithheldSchema as WithheldSchema
